"""An event store and snapshot store in process memory, for tests and demos.

It keeps the same contract as the SQLite store (``tests/contract``): positions are a global counter
from 1, an append is all or nothing, and subscribers wake on each append.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import msgspec

from core.errors import ConcurrencyError
from core.eventsourcing.checks import check_records
from core.eventsourcing.links import Link
from core.eventsourcing.wakeups import woken
from core.ports import EventBatch
from core.records import EventRecord, Snapshot

__all__ = ["MemoryEventStore", "MemorySubscription"]

DEFAULT_BATCH_SIZE: Final = 1000


class MemoryEventStore:
    """``EventStore``, ``SnapshotStore`` and ``Lifecycle`` on dicts and lists."""

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self._batch_size = batch_size
        self._log: list[EventRecord] = []  # position p is self._log[p - 1]
        self._streams: dict[str, list[EventRecord]] = {}
        self._event_ids: set[str] = set()
        self._snapshots: dict[str, Snapshot] = {}
        # Replaced on every append: a waiter holds the Event of the moment it looked, so an
        # append between its look and its wait still wakes it.
        self._appended = asyncio.Event()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._signal()

    async def ready(self) -> bool:
        return True

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[EventRecord]
    ) -> Sequence[EventRecord]:
        return self._append(stream_id, expected_version, events)

    def enqueue(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[EventRecord],
        link: Link | None = None,
        *,
        head: Snapshot | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        """``PipelinedAppends``: here the append is written before this returns, so the
        queue's order is the order of the calls."""
        future: asyncio.Future[list[EventRecord]] = asyncio.get_running_loop().create_future()
        try:
            if link is not None and link.broken:
                actual = len(self._streams.get(stream_id, ()))
                raise ConcurrencyError(stream_id, expected_version, actual)
            future.set_result(self._append(stream_id, expected_version, events))
        except (ConcurrencyError, ValueError) as error:
            if link is not None:
                link.failed = True
            future.set_exception(error)
        return future

    def _append(
        self, stream_id: str, expected_version: int, events: Sequence[EventRecord]
    ) -> list[EventRecord]:
        check_records(stream_id, expected_version, events)
        stream = self._streams.get(stream_id, [])
        if len(stream) != expected_version:
            raise ConcurrencyError(stream_id, expected_version, len(stream))
        for record in events:
            if record.event_id in self._event_ids:
                raise ValueError(f"event id {record.event_id} is already stored")
        if not events:
            return []
        first = len(self._log) + 1
        stored = [
            msgspec.structs.replace(record, position=first + offset)
            for offset, record in enumerate(events)
        ]
        self._log.extend(stored)
        self._streams.setdefault(stream_id, stream).extend(stored)
        self._event_ids.update(record.event_id for record in stored)
        self._signal()
        return stored

    async def read(
        self, stream_id: str, after_version: int = 0, until: datetime | None = None
    ) -> list[EventRecord]:
        records = self._streams.get(stream_id, [])[max(after_version, 0) :]
        if until is None:
            return list(records)
        if until.tzinfo is None:
            raise ValueError("until must be timezone-aware")
        return [record for record in records if record.occurred_at <= until]

    async def read_command(self, stream_id: str, command_id: str) -> list[EventRecord]:
        records = self._streams.get(stream_id, [])
        return [record for record in records if record.metadata.command_id == command_id]

    async def stream_version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    async def event_count(self) -> int:
        return len(self._log)

    def subscribe(self, group: str, after_checkpoint: int) -> MemorySubscription:
        return MemorySubscription(self, after_checkpoint)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return self._snapshots.get(stream_id)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        # Keep the newest: a late save of an older state must not replace a newer one.
        stored = self._snapshots.get(snapshot.stream_id)
        if stored is None or snapshot.version >= stored.version:
            self._snapshots[snapshot.stream_id] = snapshot

    def _signal(self) -> None:
        self._appended.set()
        self._appended = asyncio.Event()

    def _after(self, checkpoint: int) -> list[EventRecord]:
        start = max(checkpoint, 0)
        return self._log[start : start + self._batch_size]


class MemorySubscription:
    """Every event after a checkpoint, in position order, in batches."""

    def __init__(self, store: MemoryEventStore, after_checkpoint: int) -> None:
        self._store = store
        self._checkpoint = after_checkpoint

    async def next_batch(self, timeout: float) -> EventBatch | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            appended = self._store._appended
            events = self._store._after(self._checkpoint)
            if events:
                self._checkpoint = events[-1].position
                return EventBatch(events=events, checkpoint=self._checkpoint)
            if not await woken(appended, deadline - loop.time()):
                return None

    async def commit(self, batch: EventBatch) -> None:
        # Progress is the read model's checkpoint, written with the views; nothing to do here.
        return None

    async def close(self) -> None:
        return None
