"""The accounts read model on MongoDB (or a MongoDB-wire server such as FerretDB), without
transactions: every write is idempotent and guarded on its own (writes.py, docs/mongo.md).

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
from datetime import datetime
from typing import Any

from beanie import init_beanie
from bson import Int64
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, ConnectionFailure, DuplicateKeyError, PyMongoError

from core.config import ConfigError, env_name
from core.errors import StoreUnavailableError
from handlers.accounts.readmodel import ClaimMode, ViewChange
from handlers.accounts.views import AccountView, Movement, TransferView
from plugins.mongo import writes
from plugins.mongo.claims import CLAIMS, MongoClaim
from plugins.mongo.config import MongoConfig
from plugins.mongo.documents import (
    DOCUMENTS,
    AccountDoc,
    CheckpointDoc,
    MovementDoc,
    TransferDoc,
    account_view,
    movement_range,
    movement_view,
    to_micros,
    transfer_view,
)
from plugins.mongo.writes import Doc

__all__ = ["MongoReadModel"]

log = logging.getLogger(__name__)


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
        plan, config = writes.plan_writes(changes), self.config
        with _reachable("apply"):
            # Movements first: a reader never sees a balance whose statement line is missing.
            chunk = config.bulk_chunk
            await writes.bulk(self._collection(MovementDoc), plan.movements, chunk)
            await asyncio.gather(
                writes.write(self._collection(AccountDoc), plan.accounts, chunk),
                writes.write(self._collection(TransferDoc), plan.transfers, chunk),
            )
            await self._save_checkpoint(projection, checkpoint)

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
