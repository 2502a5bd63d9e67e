"""A new generation of the SQLite read model, filled by a rebuild beside the live one.

The file is written by one thread of its own with ``synchronous=OFF`` and an in-memory
rollback journal, in one transaction (a page that each statement touched used to be written
out again at every statement's commit), and without the secondary indexes, which are built
once at the end; the
accounts and transfers are folded in memory and written at the end too
(``plugins.sqlite.generation_fold``). Nothing reads the file before the switch, and it is rebuilt
from the events, so a crash before the switch loses nothing that matters (the next rebuild
deletes the file and starts again). Before the switch the file gets its accounts, transfers,
checkpoint and indexes, is put in WAL mode, closed and synced; only then is the pointer moved.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from core.errors import StoreUnavailableError
from core.threads import name_this_thread
from handlers.accounts.readmodel import ViewChange
from plugins.sqlite.generation_files import GenerationFiles
from plugins.sqlite.generation_fold import GenerationFold, insert_lines
from plugins.sqlite.schema import VIEWS_INDEXES, VIEWS_TABLES
from plugins.sqlite.view_writes import BATCH_DDL

__all__ = ["SqliteGenerationBuild"]

T = TypeVar("T")


def _open(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = MEMORY")
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("PRAGMA temp_store = MEMORY")
    connection.execute("PRAGMA cache_size = -65536")  # 64 MiB: the tables' upper levels
    connection.executescript(VIEWS_TABLES + BATCH_DDL)
    connection.execute("BEGIN")  # one transaction for the whole fill: each page written once
    return connection


def _finish(fold: GenerationFold, connection: sqlite3.Connection) -> None:
    """The folded rows, the end of the fill's transaction, the indexes, then WAL mode (what the
    live read model opens it in), then close."""
    fold.write(connection)
    connection.execute("COMMIT")
    connection.executescript(VIEWS_INDEXES)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.close()


class SqliteGenerationBuild:
    """``GenerationBuild`` on ``views.gN.db``; ``on_switch`` runs after the pointer moved."""

    def __init__(
        self, files: GenerationFiles, number: int, on_switch: Callable[[int], None]
    ) -> None:
        self._files = files
        self._number = number
        self._on_switch = on_switch
        self._executor = ThreadPoolExecutor(
            1, thread_name_prefix=f"sqlite-build:g{number}", initializer=name_this_thread
        )
        self._connection: sqlite3.Connection | None = None
        self._fold = GenerationFold()

    @property
    def number(self) -> int:
        return self._number

    async def open(self) -> None:
        path = str(self._files.path(self._number))
        self._connection = await self._run_raw(partial(_open, path))

    async def _run_raw(self, job: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, job)
        except sqlite3.Error as error:
            path = self._files.path(self._number)
            raise StoreUnavailableError(f"SQLite database {path}: {error}") from error

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connection
        if connection is None:
            raise StoreUnavailableError(f"generation {self._number} is not open")
        return await self._run_raw(partial(job, connection))

    async def checkpoint(self, projection: str) -> int:
        return await self._run_raw(lambda: self._fold.checkpoints.get(projection, 0))

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        """Folds the batch in and inserts its statement lines, on this build's thread."""

        def fold_and_insert(connection: sqlite3.Connection) -> None:
            insert_lines(connection, self._fold.add(projection, changes, checkpoint))

        await self._run(fold_and_insert)

    async def switch(self) -> int:
        await self._run(partial(_finish, self._fold))
        self._connection = None
        self._executor.shutdown(wait=False)
        await asyncio.to_thread(self._files.sync, self._number)
        replaced = self._files.live()
        await asyncio.to_thread(self._files.point_to, self._number)
        self._on_switch(self._number)
        await asyncio.to_thread(self._files.remove, replaced)
        return replaced

    async def discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._run_raw(connection.close)
        self._executor.shutdown(wait=False)
        await asyncio.to_thread(self._files.remove, self._number)
