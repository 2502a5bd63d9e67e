"""The SQLite event store and snapshot store: ``events.db`` in the data directory.

Appends go through the group-commit writer: one transaction and one fsync per batch, with all
the batch's appends checked by one query and inserted by one statement. Reads, stream versions
and subscriptions use the reader pool. The version check runs inside the writer's transaction,
which holds SQLite's write lock, so it is exact even if another process writes the same file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Final

import msgspec

from core.errors import ConcurrencyError, StoreUnavailableError
from core.eventsourcing.checks import check_records
from core.eventsourcing.links import Link
from core.eventsourcing.readers import ReaderPool
from core.eventsourcing.rows import (
    load_snapshot,
    read_command,
    read_stream,
    record_columns,
    save_snapshot,
    select_batch,
)
from core.eventsourcing.schema import EVENTS_DDL, to_micros
from core.eventsourcing.wakeups import woken
from core.eventsourcing.writer import DEFAULT_MAX_BATCH, GroupCommitWriter
from core.ports import EventBatch
from core.records import EventRecord, Snapshot
from plugins.sqlite.appends import Append, append_all, stream_version
from plugins.sqlite.schema import EVENTS_FILE

__all__ = ["SqliteEventStore", "SqliteSubscription"]

DEFAULT_BATCH_SIZE: Final = 1000


def _count(connection: sqlite3.Connection) -> int:
    (count,) = connection.execute("SELECT count(*) FROM events").fetchone()
    return int(count)


def _after(position: int, limit: int, connection: sqlite3.Connection) -> list[EventRecord]:
    condition = "WHERE position > ? ORDER BY position LIMIT ?"
    return select_batch(connection, condition, (position, limit))


class SqliteEventStore:
    """``EventStore``, ``SnapshotStore``, ``EventCount`` and ``Lifecycle`` on
    ``<data_dir>/events.db``.

    Use it from the event loop that started it. ``max_batch`` caps the appends per transaction;
    ``batch_size`` caps the events per subscription batch.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        readers: int = 4,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.path = data_dir / EVENTS_FILE
        self._batch_size = batch_size
        self._writer = GroupCommitWriter(
            self.path,
            ddl=EVENTS_DDL,
            synchronous="FULL",
            max_batch=max_batch,
            on_commit=self._after_commit,
        )
        self._readers = ReaderPool(self.path, readers)
        # The records this store committed most recently, in position order: a subscription
        # that keeps up takes its next batch from here instead of reading it back from disk.
        self._recent: deque[EventRecord] = deque(maxlen=4 * batch_size)
        # Replaced after every commit: a subscriber holds the Event of the moment it looked, so
        # a commit between its query and its wait still wakes it.
        self._committed = asyncio.Event()

    async def start(self) -> None:
        if self._writer.alive:
            return
        try:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailableError(f"cannot create {self.path.parent}: {error}") from error
        await self._writer.start()
        self._readers.start()

    async def close(self) -> None:
        await self._writer.close()
        await self._readers.close()
        self._signal()  # waiting subscribers look again, and find the store closed

    async def ready(self) -> bool:
        return self._writer.alive

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[EventRecord]
    ) -> Sequence[EventRecord]:
        if not events:
            check_records(stream_id, expected_version, events)
            actual = await self.stream_version(stream_id)
            if actual != expected_version:
                raise ConcurrencyError(stream_id, expected_version, actual)
            return []
        return await self.enqueue(stream_id, expected_version, events)

    def enqueue(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[EventRecord],
        link: Link | None = None,
        *,
        head: Snapshot | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        """``PipelinedAppends``: the append is in the writer's queue when this returns. The
        writer thread marks its link failed, if it fails, before it takes the next batch."""
        check_records(stream_id, expected_version, events)
        if not events:
            raise ValueError("an append queued without waiting needs events")
        rows = [record_columns(record) for record in events]
        # The batch writes with one INSERT, which SQLite undoes alone if it fails, so it needs
        # no savepoint; and that INSERT checks the versions by itself, so it needs no
        # transaction either when the whole commit is appends.
        written: asyncio.Future[int] = self._writer.submit_batched(
            append_all,
            Append(stream_id, expected_version, rows, link),
            savepoint=False,
            autocommit=True,
            link=link,
        )
        stored: asyncio.Future[list[EventRecord]] = written.get_loop().create_future()
        written.add_done_callback(partial(self._written, events, stored))
        return stored

    def _written(
        self,
        events: Sequence[EventRecord],
        stored: asyncio.Future[list[EventRecord]],
        written: asyncio.Future[int],
    ) -> None:
        error = written.exception()
        if error is not None:
            if not stored.done():
                stored.set_exception(error)
            return
        first = written.result()
        records = [
            msgspec.structs.replace(record, position=first + offset)
            for offset, record in enumerate(events)
        ]
        # Callbacks run in commit order, before the commit's signal (``_after_commit``).
        self._recent.extend(records)
        if not stored.done():
            stored.set_result(records)

    def _recent_after(self, position: int) -> list[EventRecord] | None:
        """The committed records right after ``position`` (up to a batch) if they are all still
        in memory and contiguous; [] if ``position`` is this store's latest commit; None when
        only the database can tell (another process's commits, a cancelled append, or a reader
        further behind)."""
        recent = self._recent
        if not recent or recent[-1].position < position or recent[0].position > position + 1:
            return None  # the next record is not in memory: before it, or never heard of
        if recent[-1].position == position:
            return []
        start = len(recent) - 1  # walk back to the first record after ``position``
        while start > 0 and recent[start - 1].position > position:
            start -= 1
        found: list[EventRecord] = []
        expected = position + 1
        for index in range(start, min(start + self._batch_size, len(recent))):
            record = recent[index]
            if record.position != expected:
                break
            found.append(record)
            expected += 1
        return found or None

    async def read(
        self, stream_id: str, after_version: int = 0, until: datetime | None = None
    ) -> list[EventRecord]:
        limit = None if until is None else to_micros(until)
        return await self._readers.run(partial(read_stream, stream_id, after_version, limit))

    async def stream_version(self, stream_id: str) -> int:
        return await self._readers.run(partial(stream_version, stream_id))

    async def read_command(self, stream_id: str, command_id: str) -> list[EventRecord]:
        return await self._readers.run(partial(read_command, stream_id, command_id))

    async def event_count(self) -> int:
        return await self._readers.run(_count)

    def subscribe(self, group: str, after_checkpoint: int) -> SqliteSubscription:
        return SqliteSubscription(self, after_checkpoint)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return await self._readers.run(partial(load_snapshot, stream_id))

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keeps the newest: a late save of an older state does not replace a newer one."""
        await self._writer.submit(partial(save_snapshot, snapshot))

    async def _events_after(self, position: int) -> list[EventRecord]:
        return await self._readers.run(partial(_after, position, self._batch_size))

    def _after_commit(self) -> None:
        # The commit's appenders are woken but have not run yet; each puts its records in
        # ``_recent`` when it does. Signal after them: signalled first, a subscriber could look,
        # find nothing new, and sleep through these records until the next commit (or its
        # timeout, when this was the last commit of a burst).
        asyncio.get_running_loop().call_soon(self._signal)

    def _signal(self) -> None:
        self._committed.set()
        self._committed = asyncio.Event()


class SqliteSubscription:
    """Every event after a checkpoint, in position order; woken by each commit, not by polling."""

    def __init__(self, store: SqliteEventStore, after_checkpoint: int) -> None:
        self._store = store
        self._checkpoint = after_checkpoint

    async def next_batch(self, timeout: float) -> EventBatch | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_look = False
        while True:
            committed = self._store._committed  # taken before the query, see _committed
            events = self._store._recent_after(self._checkpoint)
            # [] means caught up with this store's own commits: only another process's could be
            # on disk, and they wake nobody here, so the disk is read for them once per call,
            # at its end, rather than before every wait.
            if events is None or (not events and last_look):
                events = await self._store._events_after(self._checkpoint)
            if events:
                self._checkpoint = events[-1].position
                return EventBatch(events=events, checkpoint=self._checkpoint)
            if last_look:
                return None
            last_look = not await woken(committed, deadline - loop.time())

    async def commit(self, batch: EventBatch) -> None:
        # Progress is the read model's checkpoint, written with the views; nothing to do here.
        return None

    async def close(self) -> None:
        return None
