"""The ports that backends implement. Core and the domain depend on these, never on a backend.
The ``Authenticator`` port and ``Principal`` live in ``core.auth``, re-exported here."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import msgspec

from core.auth import Authenticator, Principal
from core.eventsourcing.links import Link
from core.records import EventRecord, Snapshot

__all__ = [
    "Authenticator",
    "EventBatch",
    "EventCount",
    "EventStore",
    "EventSubscription",
    "Lifecycle",
    "PipelinedAppends",
    "Principal",
    "SnapshotStore",
    "pipelining",
]


@runtime_checkable
class Lifecycle(Protocol):
    """Backends that hold connections open them in ``start`` and release them in ``close``."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ready(self) -> bool:
        """True when the backend can serve requests now (used by /health/ready)."""
        ...


class EventBatch(msgspec.Struct, frozen=True):
    events: list[EventRecord]
    # The store's progress marker after this batch: the last global position for SQLite and
    # memory; for Kafka the consumer group holds progress and this is informational.
    checkpoint: int


class EventSubscription(Protocol):
    async def next_batch(self, timeout: float) -> EventBatch | None:
        """The next events, or None when none arrived within ``timeout`` seconds."""
        ...

    async def commit(self, batch: EventBatch) -> None:
        """Called after the batch is durably applied downstream."""
        ...

    async def close(self) -> None: ...


class EventStore(Lifecycle, Protocol):
    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[EventRecord]
    ) -> Sequence[EventRecord]:
        """Append ``events`` (numbered ``expected_version + 1`` on) atomically.

        Raises ``ConcurrencyError`` and writes nothing when the stream is not at
        ``expected_version``; raises ``StoreUnavailableError`` when the store cannot be reached,
        and then nothing was acknowledged. Returns the records as stored (with positions).
        """
        ...

    async def read(
        self, stream_id: str, after_version: int = 0, until: datetime | None = None
    ) -> list[EventRecord]:
        """The stream's events after ``after_version``, oldest first, optionally only those
        that occurred at or before ``until``."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 for a stream with no events."""
        ...

    async def read_command(self, stream_id: str, command_id: str) -> list[EventRecord]:
        """The events of ``stream_id`` whose metadata names ``command_id``, oldest first; empty
        when no command with that id wrote to the stream. Answered from an index, however long
        the stream, so idempotency never depends on how much an aggregate remembers."""
        ...

    def subscribe(self, group: str, after_checkpoint: int) -> EventSubscription:
        """Every event of every stream, in append order per stream, for projections."""
        ...


@runtime_checkable
class EventCount(Protocol):
    """What a store that can count its events offers: a rebuild's progress total."""

    async def event_count(self) -> int:
        """How many events the store holds now."""
        ...


@runtime_checkable
class PipelinedAppends(Protocol):
    """An event store that can queue an append without waiting for it, so that a caller can
    decide the next append on a stream while the previous one is still being committed."""

    def enqueue(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[EventRecord],
        link: Link | None = None,
        *,
        head: Snapshot | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        """Put the append in the writer's queue before returning; the future resolves as
        ``EventStore.append`` would return or raise, once it committed.

        Appends queued on one stream are checked and written in the order they were queued.
        ``link`` is the append's place in a chain (``core.eventsourcing.links``): when
        ``link.after`` names a queued append that failed, this one fails too with
        ``ConcurrencyError`` and nothing of it is written, whatever the stream's version, so a
        chain never leaves a gap or an event decided from a state that was not stored. The store
        marks ``link.failed`` when the append will not be written. Without a link the append
        was decided from a stored state: only its expected version is checked.

        ``head`` is the aggregate's snapshot at the append's last version, for a store that
        keeps each stream's latest state beside its events (the Kafka store's stream heads).
        Such a store says so with a true ``keeps_heads`` attribute; a repository hands a head
        only to it (encoding one costs CPU on every append), and other stores ignore it.
        """
        ...


def pipelining(store: object) -> PipelinedAppends | None:
    """``store`` as ``PipelinedAppends`` if its class implements ``enqueue``. A wrapper that
    hands what it does not define to the store it wraps (``__getattr__``) does not pipeline:
    its own ``append`` is how it writes, and the wrapped store's ``enqueue`` would bypass it."""
    if callable(getattr(type(store), "enqueue", None)) and isinstance(store, PipelinedAppends):
        return store
    return None


@runtime_checkable
class SnapshotStore(Protocol):
    async def load_snapshot(self, stream_id: str) -> Snapshot | None: ...

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...
