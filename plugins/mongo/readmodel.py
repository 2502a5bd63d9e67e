"""The accounts read model on MongoDB (or a MongoDB-wire server such as FerretDB), without
transactions.

``apply`` cannot write a batch and its checkpoint atomically, so every write is idempotent and
guarded on its own, and the order of the writes makes any prefix of them safe:

1. movements: inserted with ``_id = "<account>:<version>"``; a duplicate key (11000) is success;
2. accounts: inserted with ``$setOnInsert`` (upsert on ``_id``), then changed only where the
   stored version is lower (``{_id, version: {$lt: v}}``);
3. transfers: the same, by transfer id;
4. the checkpoint, with ``$max`` (it never moves back).

A crash anywhere in between leaves the checkpoint at the previous batch; the projection applies
that batch again and every write already done matches nothing. See docs/mongo.md.

Consecutive changes of one account (versions v, v+1, ...) within a batch are merged into one
guarded update, which gives the same result as applying them one by one (proof in docs/mongo.md);
changes of different documents go out together in unordered bulk writes.

**Balances are read from the movements.** Every change of a balance comes with its movement
line (``balance_after`` at that version), so the account document is not updated for it: only
opening, closing and any change that is not a movement's write it. An account is read as its
document overlaid with its latest movement (the balance, and the higher of the two versions).
An insert costs a MongoDB-wire server a fraction of an update (FerretDB 1.24 here: 0.09 ms per
inserted document against 0.7 ms per updated one), so a deposit is one insert, not one of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from beanie import init_beanie
from bson import Int64
from pymongo import AsyncMongoClient, InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    PyMongoError,
)

from core.config import ConfigError, env_name
from core.errors import StoreUnavailableError
from handlers.accounts.readmodel import (
    AccountChanged,
    AccountOpenedView,
    ClaimMode,
    MovementAdded,
    TransferRequestedView,
    TransferStatusChanged,
    ViewChange,
)
from handlers.accounts.views import AccountView, Movement, TransferView
from plugins.mongo.claims import CLAIMS, MongoClaim
from plugins.mongo.config import MongoConfig
from plugins.mongo.documents import (
    DOCUMENTS,
    AccountDoc,
    CheckpointDoc,
    MovementDoc,
    TransferDoc,
    account_document,
    account_view,
    movement_document,
    movement_range,
    movement_view,
    to_micros,
    transfer_document,
    transfer_view,
)

__all__ = ["DUPLICATE_KEY", "MongoReadModel"]

log = logging.getLogger(__name__)

DUPLICATE_KEY: Final = 11000
Doc = dict[str, Any]


@dataclass(slots=True)
class _Insert:
    """Insert the document if its ``_id`` is absent. ``then`` is the guarded change folded into
    ``fields``: when the insert finds the document there, that change is applied instead."""

    fields: Doc
    then: _Change | None = None


@dataclass(slots=True)
class _Change:
    """Set ``fields`` and ``version`` where the stored version is lower than ``version``."""

    version: int
    fields: Doc = field(default_factory=dict)


_Op = _Insert | _Change


def _carried_by_movement(change: AccountChanged, lines: set[tuple[str, int]]) -> bool:
    """A balance-only change whose movement line is in the same batch: reads take the balance
    and version from that line, so the account document needs no write."""
    only_balance = change.status is None and change.closed_at is None
    return only_balance and (change.account_id, change.version) in lines


def _account_fields(change: AccountChanged) -> Doc:
    fields: Doc = {}
    if change.balance is not None:
        fields["balance"] = Int64(change.balance)
    if change.status is not None:
        fields["status"] = change.status
    if change.closed_at is not None:
        fields["closed_at"] = change.closed_at
        fields["closed_us"] = Int64(to_micros(change.closed_at))
    return fields


def _add_change(ops: dict[str, list[_Op]], key: str, version: int, fields: Doc) -> None:
    """Append a guarded change, merged into the previous one when that one is for the version
    just before: applying v then v+1 equals applying their merge at v+1 (docs/mongo.md)."""
    pending = ops.setdefault(key, [])
    last = pending[-1] if pending else None
    if isinstance(last, _Change) and last.version == version - 1:
        last.version = version
        last.fields.update(fields)
    else:
        pending.append(_Change(version, dict(fields)))


def _fold_inserts(ops: dict[str, list[_Op]]) -> None:
    """An insert followed by a newer change becomes one insert of the changed document, which
    is what the two give when the document is absent; when it is there, the insert fails with a
    duplicate key and the change is applied on its own, as it would have been."""
    for pending in ops.values():
        if len(pending) < 2:
            continue
        first, second = pending[0], pending[1]
        if (
            isinstance(first, _Insert)
            and first.then is None
            and isinstance(second, _Change)
            and second.version > int(first.fields["version"])
        ):
            first.fields = {**first.fields, **second.fields, "version": Int64(second.version)}
            first.then = second
            del pending[1]


def _inserts(ops: dict[str, list[_Op]]) -> tuple[list[str], list[InsertOne[Doc]]]:
    """The first op of each document when it is an insert (removed from ``ops``)."""
    keys: list[str] = []
    requests: list[InsertOne[Doc]] = []
    for key, pending in ops.items():
        if pending and isinstance(pending[0], _Insert):
            keys.append(key)
            requests.append(InsertOne({"_id": key, **pending[0].fields}))
    return keys, requests


def _waves(ops: dict[str, list[_Op]]) -> Iterator[list[UpdateOne]]:
    """The remaining writes in rounds: round i holds the i-th write of every document, so one
    document's writes keep their order while different documents' go out together."""
    depth = max((len(pending) for pending in ops.values()), default=0)
    for i in range(depth):
        yield [_request(key, pending[i]) for key, pending in ops.items() if i < len(pending)]


def _request(key: str, op: _Op) -> UpdateOne:
    if isinstance(op, _Insert):
        # An insert after other writes of the same document in one batch (not what the
        # projection emits, but the port allows it): insert-if-absent by upsert.
        return UpdateOne({"_id": key}, {"$setOnInsert": op.fields}, upsert=True)
    version = Int64(op.version)
    return UpdateOne(
        {"_id": key, "version": {"$lt": version}}, {"$set": {**op.fields, "version": version}}
    )


@contextlib.contextmanager
def _reachable(action: str) -> Iterator[None]:
    """Connection failures (no server selected, connection reset, timeout) become the port's
    ``StoreUnavailableError``; other errors are bugs or data errors and pass through."""
    try:
        yield
    except ConnectionFailure as error:
        raise StoreUnavailableError(f"MongoDB read model: {action} failed: {error}") from error


class MongoReadModel:
    """``AccountReadModel`` and ``Lifecycle`` on one MongoDB database."""

    def __init__(self, config: MongoConfig) -> None:
        self.config = config
        self._client: AsyncMongoClient[Doc] | None = None
        self._db: AsyncDatabase[Doc] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._client is not None:
            return
        try:
            client: AsyncMongoClient[Doc] = AsyncMongoClient(
                self.config.url,
                tz_aware=True,
                serverSelectionTimeoutMS=self.config.timeout_ms,
                connectTimeoutMS=self.config.timeout_ms,
                appname="account-balance",
            )
        except ConfigurationError as error:
            raise ConfigError(f"{env_name('mongo_url')}: {error}") from None
        database = client[self.config.database]
        try:
            with _reachable(f"start (database {self.config.database!r})"):
                # Declares the collections and creates their indexes (a no-op when they exist).
                await init_beanie(database=database, document_models=DOCUMENTS)
        except BaseException:
            await client.close()
            raise
        self._client, self._db = client, database

    async def close(self) -> None:
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await client.close()

    async def ready(self) -> bool:
        if self._client is None:
            return False
        try:
            await self._client.admin.command("ping")
        except PyMongoError:
            return False
        return True

    def _collection(self, document: type[Any]) -> AsyncCollection[Doc]:
        if self._db is None:
            raise StoreUnavailableError("MongoDB read model is not started")
        return self._db[document.Settings.name]

    # -- writes ----------------------------------------------------------------------------

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        movements: list[InsertOne[Doc]] = []
        accounts: dict[str, list[_Op]] = {}
        transfers: dict[str, list[_Op]] = {}
        lines = {
            (c.movement.account, c.movement.version)
            for c in changes
            if isinstance(c, MovementAdded)
        }
        for change in changes:
            match change:
                case MovementAdded(movement=m):
                    movements.append(InsertOne(movement_document(m)))
                case AccountOpenedView(account=a):
                    accounts.setdefault(a.id, []).append(_Insert(account_document(a)))
                case AccountChanged():
                    if _carried_by_movement(change, lines):
                        continue
                    fields = _account_fields(change)
                    _add_change(accounts, change.account_id, change.version, fields)
                case TransferRequestedView(transfer=t):
                    transfers.setdefault(t.id, []).append(_Insert(transfer_document(t)))
                case TransferStatusChanged():
                    fields = {"status": change.status, "reason": change.reason}
                    _add_change(transfers, change.transfer_id, change.version, fields)
        with _reachable("apply"):
            # Movements first: a reader never sees a balance whose statement line is missing.
            movement_docs = self._collection(MovementDoc)
            await self._bulk(movement_docs, movements, self.config.insert_chunk)
            await asyncio.gather(
                self._write(self._collection(AccountDoc), accounts),
                self._write(self._collection(TransferDoc), transfers),
            )
            await self._save_checkpoint(projection, checkpoint)

    async def _write(self, collection: AsyncCollection[Doc], ops: dict[str, list[_Op]]) -> None:
        """Inserts (each with its folded change), then the guarded changes wave by wave."""
        _fold_inserts(ops)
        keys, inserts = _inserts(ops)
        present = await self._bulk(collection, inserts, self.config.insert_chunk)
        for index, key in enumerate(keys):
            insert = ops[key].pop(0)
            assert isinstance(insert, _Insert)
            if index in present and insert.then is not None:
                ops[key].insert(0, insert.then)  # it was there: apply the change on its own
        for wave in _waves(ops):
            await self._bulk(collection, wave, self.config.update_chunk)

    async def _bulk(
        self, collection: AsyncCollection[Doc], requests: Sequence[Any], chunk: int
    ) -> set[int]:
        """Unordered bulk writes of ``chunk`` requests; returns the indexes (into
        ``requests``) that found their ``_id`` taken, which means they were applied before."""
        duplicates: set[int] = set()
        for start in range(0, len(requests), chunk):
            try:
                await collection.bulk_write(requests[start : start + chunk], ordered=False)
            except BulkWriteError as error:
                errors = error.details.get("writeErrors", [])
                if error.details.get("writeConcernErrors") or any(
                    e.get("code") != DUPLICATE_KEY for e in errors
                ):
                    raise
                duplicates.update(start + int(e["index"]) for e in errors)
        return duplicates

    async def _save_checkpoint(self, projection: str, position: int) -> None:
        checkpoints = self._collection(CheckpointDoc)
        update = {"$max": {"position": Int64(position)}}
        try:
            await checkpoints.update_one({"_id": projection}, update, upsert=True)
        except DuplicateKeyError:
            # Another projector's upsert created it first; now it exists, so this one updates.
            await checkpoints.update_one({"_id": projection}, update)

    async def claim(self, mode: ClaimMode) -> MongoClaim:
        """See ``ProjectionClaims``: a lease document, renewed while held (plugins/mongo/claims)."""
        if self._db is None:
            raise StoreUnavailableError("MongoDB read model is not started")
        where = f"the read model in MongoDB database {self.config.database!r}"
        with _reachable("claim"):
            return await MongoClaim.take(self._db[CLAIMS], mode, where)

    async def reset(self) -> None:
        with _reachable("reset"):
            for document in DOCUMENTS:
                await self._collection(document).delete_many({})

    # -- queries ---------------------------------------------------------------------------

    async def checkpoint(self, projection: str) -> int:
        with _reachable("checkpoint"):
            doc = await self._collection(CheckpointDoc).find_one({"_id": projection})
        return 0 if doc is None else int(doc["position"])

    async def get_account(self, account_id: str) -> AccountView | None:
        with _reachable("get_account"):
            doc = await self._collection(AccountDoc).find_one({"_id": account_id})
            if doc is None:
                return None
            return account_view(doc, await self._latest_line(account_id))

    async def _latest_line(self, account_id: str) -> Doc | None:
        """The account's latest movement line (its balance and version), if it has one."""
        query = {"_id": movement_range(account_id, 0), "account": account_id}
        fields = {"balance_after": 1, "version": 1}
        movements = self._collection(MovementDoc)
        return await movements.find_one(query, fields, sort=[("_id", -1)])

    async def list_accounts(
        self, owner: str | None, after: str | None, limit: int
    ) -> list[AccountView]:
        if limit <= 0:
            return []  # pymongo's limit(0) would mean "no limit"
        query: Doc = {}
        if owner is not None:
            query["owner"] = owner
        if after is not None:
            query["_id"] = {"$gt": after}
        with _reachable("list_accounts"):
            cursor = self._collection(AccountDoc).find(query).sort("_id", 1).limit(limit)
            docs = await cursor.to_list()
            lines = await asyncio.gather(*(self._latest_line(doc["_id"]) for doc in docs))
        return [account_view(doc, line) for doc, line in zip(docs, lines, strict=True)]

    async def statement(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime | None,
        after_version: int,
        limit: int,
    ) -> list[Movement]:
        if limit <= 0:
            return []
        # The _id range is the account's lines after ``after_version`` in version order; the
        # account field keeps out an account whose id extends this one ("a" and "a:b").
        query: Doc = {"_id": movement_range(account_id, after_version), "account": account_id}
        when: Doc = {}
        if start is not None:
            when["$gte"] = Int64(to_micros(start))
        if end is not None:
            when["$lt"] = Int64(to_micros(end))
        if when:
            query["occurred_us"] = when
        with _reachable("statement"):
            cursor = self._collection(MovementDoc).find(query).sort("_id", 1).limit(limit)
            docs = await cursor.to_list()
        return [movement_view(doc) for doc in docs]

    async def get_transfer(self, transfer_id: str) -> TransferView | None:
        with _reachable("get_transfer"):
            doc = await self._collection(TransferDoc).find_one({"_id": transfer_id})
        return None if doc is None else transfer_view(doc)

    async def pending_transfers(self) -> list[str]:
        with _reachable("pending_transfers"):
            cursor = self._collection(TransferDoc).find({"status": "pending"}, {"_id": 1})
            docs = await cursor.sort("_id", 1).to_list()
        return [str(doc["_id"]) for doc in docs]
