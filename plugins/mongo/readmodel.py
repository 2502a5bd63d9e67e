"""The accounts read model on MongoDB (or a MongoDB-wire server such as FerretDB), without
transactions: every write is idempotent and guarded on its own (writes.py, docs/mongo.md).

**Balances are read from the movements.** Every change of a balance comes with its movement
line (``balance_after`` at that version), so the account document is not updated for it: only
opening, closing and any change that is not a movement's write it. An account is read as its
document overlaid with its latest movement (the balance, and the higher of the two versions).
An insert costs a MongoDB-wire server a fraction of an update (FerretDB 1.24 here: 0.09 ms per
inserted document against 0.7 ms per updated one), so a deposit is one insert, not one of each.

The views live in numbered generations, rebuilt blue/green (``plugins.mongo.generations``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from beanie import init_beanie
from bson import Int64
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, ConnectionFailure, DuplicateKeyError, PyMongoError

from core.config import ConfigError, env_name
from core.errors import StoreUnavailableError
from handlers.accounts.generations import GenerationSwitchedError
from handlers.accounts.readmodel import FeedPage, ViewChange, closing_of
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
from plugins.mongo.generations import (
    MongoGenerationBuild,
    collection_name,
    create_generation,
    drop_generation,
    existing_generations,
    read_live,
)
from plugins.mongo.writes import Doc

__all__ = ["RETIRE_AFTER_POLLS", "MongoReadModel"]

# How long a rebuild leaves the old generation in place after its switch, in generation polls:
# a reader that looked at the pointer just before the switch moves within one.
RETIRE_AFTER_POLLS: Final = 3

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
    """``AccountReadModel``, ``Generations``, ``ProjectionClaims`` and ``Lifecycle`` on one
    MongoDB database; readers look at the generation pointer every
    ``config.generation_poll_ms``."""

    def __init__(self, config: MongoConfig) -> None:
        self.config = config
        self._client: AsyncMongoClient[Doc] | None = None
        self._db: AsyncDatabase[Doc] | None = None
        self._poll = config.generation_poll_ms / 1000
        self._retire_after = RETIRE_AFTER_POLLS * self._poll
        self._generation = 0
        self._looked = float("-inf")  # when the pointer was last read (loop time)

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
        self._looked = float("-inf")

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

    def _database(self) -> AsyncDatabase[Doc]:
        if self._db is None:
            raise StoreUnavailableError("MongoDB read model is not started")
        return self._db

    def _collection(
        self, document: type[Any], generation: int | None = None
    ) -> AsyncCollection[Doc]:
        """``document``'s collection in ``generation`` (by default the live one, as last read)."""
        number = self._generation if generation is None else generation
        return self._database()[collection_name(document, number)]

    async def _live(self, *, fresh: bool = False) -> int:
        """The live generation: read from the pointer when asked ``fresh`` or when the last
        look is ``generation_poll`` seconds old."""
        now = asyncio.get_running_loop().time()
        if fresh or now - self._looked >= self._poll:
            with _reachable("read the generation pointer"):
                self._generation = await read_live(self._database())
            self._looked = now
        return self._generation

    # -- generations -----------------------------------------------------------------------

    async def live_generation(self) -> int:
        return await self._live(fresh=True)

    async def _in(self, generation: int) -> None:
        live = await self._live(fresh=True)
        if live != generation:
            raise GenerationSwitchedError(generation, live)

    async def checkpoint_in(self, generation: int, projection: str) -> int:
        await self._in(generation)
        return await self._checkpoint(generation, projection)

    async def apply_in(
        self, generation: int, projection: str, changes: Sequence[ViewChange], checkpoint: int
    ) -> None:
        await self._in(generation)
        await self._apply(generation, projection, changes, checkpoint)

    async def new_generation(self) -> MongoGenerationBuild:
        database = self._database()
        with _reachable("new generation"):
            live = await read_live(database)
            existing = await existing_generations(database)
            for leftover in existing - {live}:
                await drop_generation(database, leftover)
            number = max(existing | {live}) + 1
            await create_generation(database, number)
        return MongoGenerationBuild(database, number, self._apply, self._retire_after)

    # -- writes ----------------------------------------------------------------------------

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        await self._apply(await self._live(fresh=True), projection, changes, checkpoint)

    async def _apply(
        self, generation: int, projection: str, changes: Sequence[ViewChange], checkpoint: int
    ) -> None:
        plan, config = writes.plan_writes(changes), self.config
        with _reachable("apply"):
            # Movements first: a reader never sees a balance whose statement line is missing.
            chunk = config.bulk_chunk
            await writes.bulk(self._collection(MovementDoc, generation), plan.movements, chunk)
            await asyncio.gather(
                writes.write(self._collection(AccountDoc, generation), plan.accounts, chunk),
                writes.write(self._collection(TransferDoc, generation), plan.transfers, chunk),
            )
            await self._save_checkpoint(generation, projection, checkpoint)

    async def _save_checkpoint(self, generation: int, projection: str, position: int) -> None:
        checkpoints = self._collection(CheckpointDoc, generation)
        update = {"$max": {"position": Int64(position)}}
        try:
            await checkpoints.update_one({"_id": projection}, update, upsert=True)
        except DuplicateKeyError:
            # Another projector's upsert created it first; now it exists, so this one updates.
            await checkpoints.update_one({"_id": projection}, update)

    async def claim(self) -> MongoClaim:
        """See ``ProjectionClaims``: a lease document, renewed while held (plugins/mongo/claims)."""
        where = f"the read model in MongoDB database {self.config.database!r}"
        with _reachable("claim"):
            return await MongoClaim.take(self._database()[CLAIMS], where)

    async def reset(self) -> None:
        """Drops the live generation's collections and creates them again (a drop works on
        any server and size; see ``plugins.mongo.generations``)."""
        with _reachable("reset"):
            live = await self._live(fresh=True)
            await drop_generation(self._database(), live)
            await create_generation(self._database(), live)

    # -- queries ---------------------------------------------------------------------------

    async def checkpoint(self, projection: str) -> int:
        return await self._checkpoint(await self._live(), projection)

    async def _checkpoint(self, generation: int, projection: str) -> int:
        with _reachable("checkpoint"):
            doc = await self._collection(CheckpointDoc, generation).find_one({"_id": projection})
        return 0 if doc is None else int(doc["position"])

    async def get_account(self, account_id: str) -> AccountView | None:
        generation = await self._live()
        with _reachable("get_account"):
            doc = await self._collection(AccountDoc, generation).find_one({"_id": account_id})
            if doc is None:
                return None
            return account_view(doc, await self._latest_line(generation, account_id))

    async def _latest_line(self, generation: int, account_id: str) -> Doc | None:
        """The account's latest movement line (its balance and version), if it has one."""
        query = {"_id": movement_range(account_id, 0), "account": account_id}
        fields = {"balance_after": 1, "version": 1}
        movements = self._collection(MovementDoc, generation)
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
        generation = await self._live()
        with _reachable("list_accounts"):
            accounts = self._collection(AccountDoc, generation)
            docs = await accounts.find(query).sort("_id", 1).limit(limit).to_list()
            lines = await asyncio.gather(
                *(self._latest_line(generation, doc["_id"]) for doc in docs)
            )
        return [account_view(doc, line) for doc, line in zip(docs, lines, strict=True)]

    async def statement(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime | None,
        after_version: int,
        limit: int,
    ) -> list[Movement]:
        when: Doc = {}
        if start is not None:
            when["$gte"] = Int64(to_micros(start))
        if end is not None:
            when["$lt"] = Int64(to_micros(end))
        generation = await self._live()
        with _reachable("statement"):
            return await self._movements(generation, account_id, after_version, limit, when)

    async def _movements(
        self, generation: int, account_id: str, after_version: int, limit: int, when: Doc
    ) -> list[Movement]:
        if limit <= 0:
            return []  # pymongo's limit(0) would mean "no limit"
        # The _id range is the account's lines after ``after_version`` in version order; the
        # account field keeps out an account whose id extends this one ("a" and "a:b").
        query: Doc = {"_id": movement_range(account_id, after_version), "account": account_id}
        if when:
            query["occurred_us"] = when
        cursor = self._collection(MovementDoc, generation).find(query).sort("_id", 1).limit(limit)
        return [movement_view(doc) for doc in await cursor.to_list()]

    async def feed_page(self, account_id: str, after_version: int, limit: int) -> FeedPage:
        """Two finds, the account's first: ``_apply`` writes a batch's movements before its
        accounts, so a close read first comes with every movement before it."""
        generation = await self._live()
        with _reachable("feed_page"):
            doc = await self._collection(AccountDoc, generation).find_one({"_id": account_id})
            movements = await self._movements(generation, account_id, after_version, limit, {})
        # A closed account's document holds the close's version, the last of its stream.
        return FeedPage(movements, closing_of(None if doc is None else account_view(doc)))

    async def get_transfer(self, transfer_id: str) -> TransferView | None:
        generation = await self._live()
        with _reachable("get_transfer"):
            doc = await self._collection(TransferDoc, generation).find_one({"_id": transfer_id})
        return None if doc is None else transfer_view(doc)

    async def pending_transfers(self) -> list[str]:
        generation = await self._live()
        with _reachable("pending_transfers"):
            transfers = self._collection(TransferDoc, generation)
            cursor = transfers.find({"status": "pending"}, {"_id": 1})
            docs = await cursor.sort("_id", 1).to_list()
        return [str(doc["_id"]) for doc in docs]
