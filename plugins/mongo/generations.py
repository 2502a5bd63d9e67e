"""The Mongo read model's generations: collection names, the pointer document, and a new
generation being built (``handlers.accounts.generations``).

Generation 0 is the collections ``accounts``, ``movements``, ``transfers`` and ``checkpoints``
(the read model as it was before any blue/green rebuild); generation N is the same names with
``_gN``. The live one is named by the document ``{_id: "live", number: N}`` in
``read_model_generation`` (no document: generation 0). The switch is one update of that
document, filtered on the number it replaces (a compare-and-set): a single-document write is
atomic on MongoDB and on FerretDB, so every reader sees the old number or the new one.

Readers look at the pointer at most every ``poll`` seconds, so a process may read the old
generation for up to that long after the switch; the rebuild therefore waits ``retire_after``
seconds before it drops the old collections. The old generation is dropped, not emptied: a
drop is one command on any server (FerretDB 1.24's SQLite backend fails ``delete_many({})`` on
more than about 32,000 documents, "too many SQL variables").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from beanie import Document
from bson import Int64
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from handlers.accounts.readmodel import ViewChange
from plugins.mongo.documents import DOCUMENTS, CheckpointDoc

__all__ = [
    "POINTER",
    "MongoGenerationBuild",
    "collection_name",
    "create_generation",
    "drop_generation",
    "existing_generations",
    "read_live",
]

POINTER: Final = "read_model_generation"
_LIVE: Final = "live"
_NAMES: Final = tuple(document.Settings.name for document in DOCUMENTS)
_NUMBERED: Final = re.compile(rf"({'|'.join(_NAMES)})_g(\d+)")
Doc = dict[str, Any]
Writer = Callable[[int, str, Sequence[ViewChange], int], Any]


def collection_name(document: type[Document], generation: int) -> str:
    name: str = document.Settings.name
    return name if generation == 0 else f"{name}_g{generation}"


async def read_live(database: AsyncDatabase[Doc]) -> int:
    found = await database[POINTER].find_one({"_id": _LIVE})
    return 0 if found is None else int(found["number"])


async def existing_generations(database: AsyncDatabase[Doc]) -> set[int]:
    numbers: set[int] = set()
    for name in await database.list_collection_names():
        if name in _NAMES:
            numbers.add(0)
        elif (match := _NUMBERED.fullmatch(name)) is not None:
            numbers.add(int(match.group(2)))
    return numbers


async def create_generation(database: AsyncDatabase[Doc], generation: int) -> None:
    """The generation's collections, with their indexes."""
    for document in DOCUMENTS:
        collection = await database.create_collection(collection_name(document, generation))
        indexes = getattr(document.Settings, "indexes", None)
        if indexes:
            await collection.create_indexes(indexes)


async def drop_generation(database: AsyncDatabase[Doc], generation: int) -> None:
    for document in DOCUMENTS:
        await database.drop_collection(collection_name(document, generation))


class MongoGenerationBuild:
    """``GenerationBuild`` on the ``_gN`` collections. ``write`` applies a batch into a
    generation (the read model's own writes); the switch waits ``retire_after`` seconds before
    it drops the replaced generation."""

    def __init__(
        self, database: AsyncDatabase[Doc], number: int, write: Writer, retire_after: float
    ) -> None:
        self._database = database
        self._number = number
        self._write = write
        self._retire_after = retire_after

    @property
    def number(self) -> int:
        return self._number

    def _checkpoints(self) -> AsyncCollection[Doc]:
        return self._database[collection_name(CheckpointDoc, self._number)]

    async def checkpoint(self, projection: str) -> int:
        found = await self._checkpoints().find_one({"_id": projection})
        return 0 if found is None else int(found["position"])

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        await self._write(self._number, projection, changes, checkpoint)

    async def switch(self) -> int:
        replaced = await read_live(self._database)
        update = {"$set": {"number": Int64(self._number)}}
        try:
            result = await self._database[POINTER].update_one(
                {"_id": _LIVE, "number": replaced}, update, upsert=replaced == 0
            )
            switched = result.matched_count == 1 or result.upserted_id is not None
        except DuplicateKeyError:
            switched = False
        if not switched:
            raise RuntimeError(f"the live generation moved from {replaced} during the switch")
        await asyncio.sleep(self._retire_after)
        await drop_generation(self._database, replaced)
        return replaced

    async def discard(self) -> None:
        await drop_generation(self._database, self._number)
