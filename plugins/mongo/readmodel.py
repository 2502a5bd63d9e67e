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
import logging
from collections.abc import Sequence
from typing import Final

from bson import Int64
from pymongo.errors import DuplicateKeyError

from handlers.accounts.generations import GenerationSwitchedError
from handlers.accounts.readmodel import ViewChange
from plugins.mongo import writes
from plugins.mongo.claims import CLAIMS, MongoClaim
from plugins.mongo.config import MongoConfig
from plugins.mongo.connection import reachable
from plugins.mongo.documents import AccountDoc, CheckpointDoc, MovementDoc, TransferDoc
from plugins.mongo.generations import (
    MongoGenerationBuild,
    create_generation,
    drop_generation,
    existing_generations,
    read_live,
)
from plugins.mongo.queries import MongoQueries

__all__ = ["RETIRE_AFTER_POLLS", "MongoReadModel"]

# How long a rebuild leaves the old generation in place after its switch, in generation polls:
# a reader that looked at the pointer just before the switch moves within one.
RETIRE_AFTER_POLLS: Final = 3

log = logging.getLogger(__name__)


class MongoReadModel(MongoQueries):
    """``AccountReadModel``, ``Generations``, ``ProjectionClaims`` and ``Lifecycle`` on one
    MongoDB database (the connection: ``plugins.mongo.connection``; the queries:
    ``plugins.mongo.queries``); readers look at the generation pointer every
    ``config.generation_poll_ms``."""

    def __init__(self, config: MongoConfig) -> None:
        super().__init__(config)
        self._retire_after = RETIRE_AFTER_POLLS * self._poll

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
        with reachable("new generation"):
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
        with reachable("apply"):
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
        with reachable("claim"):
            return await MongoClaim.take(self._database()[CLAIMS], where)

    async def reset(self) -> None:
        """Drops the live generation's collections and creates them again (a drop works on
        any server and size; see ``plugins.mongo.generations``)."""
        with reachable("reset"):
            live = await self._live(fresh=True)
            await drop_generation(self._database(), live)
            await create_generation(self._database(), live)
