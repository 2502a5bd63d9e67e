"""Load and save event-sourced aggregates: snapshot + newer events, a bounded cache of states.

States are immutable values, so one cached state can serve concurrent commands: each decides from
the version it loaded and the store's optimistic check settles who wins. A conflict evicts the
cached entry, so the retry reloads from the store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

import msgspec

from core.ports import EventStore, SnapshotStore
from core.records import EventRecord, Snapshot

__all__ = ["AggregateKind", "Repository"]

S = TypeVar("S")


class AggregateKind(Protocol[S]):
    """How one kind of aggregate starts, folds its records and snapshots itself."""

    snapshot_schema: int

    def initial(self, stream_id: str) -> S: ...

    def evolve(self, state: S, record: EventRecord) -> S: ...

    def version(self, state: S) -> int: ...

    def encode_snapshot(self, state: S) -> bytes: ...

    def decode_snapshot(self, data: bytes) -> S: ...


class Repository(Generic[S]):
    def __init__(
        self,
        store: EventStore,
        kind: AggregateKind[S],
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 100,
        cache_size: int = 10_000,
    ) -> None:
        self.store = store
        self._kind = kind
        self._snapshots = snapshots
        self._snapshot_every = snapshot_every
        self._cache: OrderedDict[str, S] = OrderedDict()
        self._cache_size = cache_size

    async def load(self, stream_id: str) -> S:
        cached = self._cache.get(stream_id)
        if cached is not None:
            self._cache.move_to_end(stream_id)
            return cached
        state = await self._load_from_store(stream_id)
        if self._kind.version(state) > 0:
            self._remember(stream_id, state)
        return state

    async def _load_from_store(self, stream_id: str) -> S:
        kind = self._kind
        state = kind.initial(stream_id)
        if self._snapshots is not None:
            snapshot = await self._snapshots.load_snapshot(stream_id)
            if snapshot is not None and snapshot.schema == kind.snapshot_schema:
                state = kind.decode_snapshot(snapshot.state)
        for record in await self.store.read(stream_id, after_version=kind.version(state)):
            state = kind.evolve(state, record)
        return state

    async def save(self, stream_id: str, state: S, records: Sequence[EventRecord]) -> S:
        """Append ``records`` on top of ``state`` (the state they were decided from) and return
        the new state. Raises ``ConcurrencyError`` when someone else appended first."""
        if not records:
            return state
        before = self._kind.version(state)
        try:
            stored = await self.store.append(stream_id, before, records)
        except BaseException:
            # A conflict means the cached state is stale; any other failure leaves the outcome
            # unknown (a timeout after the store got the append): reload from the store next time.
            self._cache.pop(stream_id, None)
            raise
        for record in stored:
            state = self._kind.evolve(state, record)
        self._remember(stream_id, state)
        after = self._kind.version(state)
        if (
            self._snapshots is not None
            and after // self._snapshot_every > before // self._snapshot_every
        ):
            await self._snapshots.save_snapshot(
                Snapshot(
                    stream_id=stream_id,
                    version=after,
                    schema=self._kind.snapshot_schema,
                    state=msgspec.Raw(self._kind.encode_snapshot(state)),
                )
            )
        return state

    async def read_until(self, stream_id: str, version: int) -> S:
        """The state as it was at ``version`` (for replaying an idempotent command's result)."""
        state = self._kind.initial(stream_id)
        for record in await self.store.read(stream_id):
            if record.version > version:
                break
            state = self._kind.evolve(state, record)
        return state

    def forget(self, stream_id: str) -> None:
        self._cache.pop(stream_id, None)

    def _remember(self, stream_id: str, state: S) -> None:
        self._cache[stream_id] = state
        self._cache.move_to_end(stream_id)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
