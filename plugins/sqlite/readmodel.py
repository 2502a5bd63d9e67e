"""The SQLite accounts read model: ``views.db`` (or a later generation's file) in the data
directory.

``apply`` writes a batch's view changes and the projection's checkpoint in one transaction, so
after a crash either both are there or neither is, and each event is applied exactly once. Every
change is also guarded by (stream, version) on its own, so applying a batch twice changes nothing.
The writes are set-based (``plugins.sqlite.view_writes``), the queries run on the reader pool
(``plugins.sqlite.view_reads``).

The views live in numbered generations (``handlers.accounts.generations``): every query first
looks at the pointer's ``stat`` (``plugins.sqlite.generation_files``) and, once a rebuild has
moved it, opens the new generation's file and closes the old one's connections.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from pathlib import Path

from core.errors import BalanceError, StoreUnavailableError
from core.eventsourcing.jobs import Job, T
from core.eventsourcing.readers import ReaderPool
from core.eventsourcing.writer import GroupCommitWriter
from handlers.accounts.generations import GenerationSwitchedError
from handlers.accounts.readmodel import FeedPage, ViewChange
from handlers.accounts.views import AccountView, Movement, TransferView
from plugins.sqlite import view_reads
from plugins.sqlite.claims import FileClaim
from plugins.sqlite.generation_build import SqliteGenerationBuild
from plugins.sqlite.generation_files import GenerationFiles, PointerSignature
from plugins.sqlite.schema import VIEWS_DDL
from plugins.sqlite.view_writes import BATCH_DDL, apply_batches, batch_parameters, micros

__all__ = ["SqliteReadModel"]


def _reset(connection: sqlite3.Connection) -> None:
    for table in ("accounts", "movements", "transfers", "checkpoints"):
        connection.execute(f"DELETE FROM {table}")


class _Generation:
    """One generation's file, open: its writer thread (started on first use) and readers.

    ``synchronous=NORMAL`` is enough here because the views and their checkpoint commit
    together: a power cut can only lose a tail of both, which the projection then replays from
    the event store."""

    def __init__(self, number: int, path: Path, readers: int) -> None:
        self.number = number
        self.path = path
        self.writer = GroupCommitWriter(path, ddl=VIEWS_DDL + BATCH_DDL, synchronous="NORMAL")
        self.readers = ReaderPool(path, readers)
        self.readers.start()
        self._opening = asyncio.Lock()

    async def open_writer(self) -> GroupCommitWriter:
        async with self._opening:
            if not self.writer.alive:
                await self.writer.start()
        return self.writer

    async def close(self) -> None:
        await self.writer.close()
        await self.readers.close()


class SqliteReadModel:
    """``AccountReadModel``, ``Generations``, ``ProjectionClaims`` and ``Lifecycle`` on the
    live generation's file in ``data_dir``."""

    def __init__(self, data_dir: Path, *, readers: int = 2) -> None:
        self.files = GenerationFiles(data_dir)
        self._reader_count = readers
        self._live: _Generation | None = None
        self._signature: PointerSignature = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def path(self) -> Path:
        """The live generation's file (as the pointer says now, when closed)."""
        live = self._now() if self._live is not None else None
        return self.files.path(self.files.live()) if live is None else live.path

    async def start(self) -> None:
        if self._live is not None:
            return
        data_dir = self.files.data_dir
        try:
            await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailableError(f"cannot create {data_dir}: {error}") from error
        self._signature = self.files.signature()
        number = self.files.live()
        live = _Generation(number, self.files.path(number), self._reader_count)
        try:
            await live.open_writer()
        except BaseException:
            await live.close()
            raise
        self._live = live

    async def close(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            await live.close()
        if self._closing:
            await asyncio.gather(*self._closing)

    def _now(self) -> _Generation:
        """The live generation, opened anew if the pointer moved since the last look."""
        live = self._live
        if live is None:
            raise StoreUnavailableError(f"read model in {self.files.data_dir} is not open")
        signature = self.files.signature()
        if signature == self._signature:
            return live
        self._signature = signature
        number = self.files.live()
        if number != live.number:
            self._live = _Generation(number, self.files.path(number), self._reader_count)
            closing = asyncio.get_running_loop().create_task(live.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        return self._live or live

    async def _read(self, query: Job[T]) -> T:
        generation = self._now()
        try:
            return await generation.readers.run(query)
        except (StoreUnavailableError, sqlite3.Error):
            # A rebuild switched and dropped the generation under this query: ask the new one.
            if self._now() is generation:
                raise
            return await self._now().readers.run(query)

    async def ready(self) -> bool:
        try:
            return (await self._now().open_writer()).alive
        except BalanceError:
            return False

    # -- generations -----------------------------------------------------------------------

    async def live_generation(self) -> int:
        return self._now().number

    def _in(self, number: int) -> _Generation:
        generation = self._now()
        if generation.number != number:
            raise GenerationSwitchedError(number, generation.number)
        return generation

    async def checkpoint_in(self, generation: int, projection: str) -> int:
        live = self._in(generation)
        return await live.readers.run(partial(view_reads.checkpoint, projection))

    async def apply_in(
        self, generation: int, projection: str, changes: Sequence[ViewChange], checkpoint: int
    ) -> None:
        await self._write(self._in(generation), projection, changes, checkpoint)

    async def new_generation(self) -> SqliteGenerationBuild:
        live = self._now().number
        existing = await asyncio.to_thread(self.files.existing)
        for leftover in existing - {live}:
            await asyncio.to_thread(self.files.remove, leftover)
        build = SqliteGenerationBuild(self.files, max(existing | {live}) + 1, self._switched)
        await build.open()
        return build

    def _switched(self, number: int) -> None:
        self._now()  # this process's readers move at once

    async def claim(self) -> FileClaim:
        """See ``ProjectionClaims``: a lock on ``views.rebuild.lock`` beside the database."""
        await asyncio.to_thread(self.files.data_dir.mkdir, parents=True, exist_ok=True)
        where = f"the read model in {self.files.data_dir}"
        return FileClaim.take(self.files.rebuild_lock, where)

    # -- the port --------------------------------------------------------------------------

    async def checkpoint(self, projection: str) -> int:
        return await self._read(partial(view_reads.checkpoint, projection))

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        """The changes and the checkpoint (which never moves back) in one transaction."""
        await self._write(self._now(), projection, changes, checkpoint)

    async def _write(
        self,
        generation: _Generation,
        projection: str,
        changes: Sequence[ViewChange],
        checkpoint: int,
    ) -> None:
        parameters = batch_parameters(projection, changes, checkpoint)
        # One row is one statement: SQLite undoes it alone if it fails, and it commits alone.
        alone = len(parameters) == 1
        job = partial(apply_batches, parameters)
        writer = await generation.open_writer()
        try:
            await writer.submit(job, savepoint=not alone, autocommit=alone)
        except StoreUnavailableError:
            live = self._now()
            if live is not generation:  # closed by a switch while this batch waited
                raise GenerationSwitchedError(generation.number, live.number) from None
            raise

    async def reset(self) -> None:
        writer = await self._now().open_writer()
        await writer.submit(_reset)

    async def get_account(self, account_id: str) -> AccountView | None:
        return await self._read(partial(view_reads.get_account, account_id))

    async def list_accounts(
        self, owner: str | None, after: str | None, limit: int
    ) -> list[AccountView]:
        return await self._read(partial(view_reads.list_accounts, owner, after, limit))

    async def statement(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime | None,
        after_version: int,
        limit: int,
    ) -> list[Movement]:
        query = partial(
            view_reads.statement, account_id, micros(start), micros(end), after_version, limit
        )
        return await self._read(query)

    async def feed_page(self, account_id: str, after_version: int, limit: int) -> FeedPage:
        return await self._read(partial(view_reads.feed_page, account_id, after_version, limit))

    async def get_transfer(self, transfer_id: str) -> TransferView | None:
        return await self._read(partial(view_reads.get_transfer, transfer_id))

    async def pending_transfers(self) -> list[str]:
        return await self._read(view_reads.pending)
