"""The connection of the Mongo read model (``plugins.mongo.readmodel``): its client and
database, started and closed with the app, and the live generation as readers see it (the
generation pointer, read again every ``config.generation_poll_ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError, ConnectionFailure, PyMongoError

from core.config import ConfigError, env_name
from core.errors import StoreUnavailableError
from plugins.mongo.config import MongoConfig
from plugins.mongo.documents import DOCUMENTS
from plugins.mongo.generations import collection_name, read_live
from plugins.mongo.writes import Doc

__all__ = ["MongoConnection", "reachable"]


@contextlib.contextmanager
def reachable(action: str) -> Iterator[None]:
    """Connection failures (no server selected, connection reset, timeout) become the port's
    ``StoreUnavailableError``; other errors are bugs or data errors and pass through."""
    try:
        yield
    except ConnectionFailure as error:
        raise StoreUnavailableError(f"MongoDB read model: {action} failed: {error}") from error


class MongoConnection:
    """One MongoDB database (``Lifecycle``), and the collections of its live generation."""

    def __init__(self, config: MongoConfig) -> None:
        self.config = config
        self._client: AsyncMongoClient[Doc] | None = None
        self._db: AsyncDatabase[Doc] | None = None
        self._poll = config.generation_poll_ms / 1000
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
            with reachable(f"start (database {self.config.database!r})"):
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
            with reachable("read the generation pointer"):
                self._generation = await read_live(self._database())
            self._looked = now
        return self._generation
