"""Load and save event-sourced aggregates: snapshot + newer events, a bounded cache of states.

States are immutable values, so one cached state can serve concurrent commands: each decides from
the version it loaded and the store's optimistic check settles who wins. A conflict evicts the
cached entry, so the retry reloads from the store.

With a store that pipelines appends (``PipelinedAppends``), ``queue`` puts an append in the
store's queue and returns at once with what waits for its commit, so the caller can let the
next command on the stream decide while this one commits. The repository then keeps a
speculative head per stream (the state with every queued append) apart from the committed
states it caches: ``load`` answers from the head while appends are pending; when one fails, the
head is dropped and the next ``load`` waits for the stream's pending appends to settle and reads
the store. Snapshots are taken from committed states only. To a store that keeps each stream's
latest state (``keeps_heads``, the Kafka store's stream heads) each queued append also hands the
snapshot of the state it leads to (``head``), encoded once and reused as the snapshot if one is
due. A kind's state must not depend on
positions, which the store assigns at commit.

Each queued append is chained (``core.eventsourcing.links``) to the stream's last queued append
when it was decided from the very state that one leads to (the same object: states are the
values ``evolve`` returns), so the store refuses it if that one fails. An append decided from a
state read from the store is not chained, even at the version a failed one would have reached.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from functools import partial
from typing import Generic, Protocol, TypeVar

import msgspec

from core.eventsourcing.links import Link
from core.ports import EventStore, SnapshotStore, pipelining
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


class _Head(Generic[S]):
    """A stream's appends that are queued and not settled, and the state they lead to (None once
    one failed: then only the store can tell)."""

    __slots__ = ("idle", "pending", "state")

    def __init__(self, state: S) -> None:
        self.state: S | None = state
        self.pending = 0
        self.idle: asyncio.Future[None] | None = None  # resolved when pending drops to 0


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
        self._pipeline = pipelining(store)
        # Only a store that keeps each stream's latest state is handed one per append.
        self._hands_heads = bool(getattr(self._pipeline, "keeps_heads", False))
        self._heads: dict[str, _Head[S]] = {}
        # Each stream's last queued append (the state it leads to, its link) until it commits;
        # one that failed stays until the next replaces it, for a command decided from it then.
        self._tails: dict[str, tuple[S, Link]] = {}

    @property
    def pipelined(self) -> bool:
        """True when ``queue`` returns before the commit (the store pipelines appends)."""
        return self._pipeline is not None

    async def load(self, stream_id: str) -> S:
        """The state to decide from: with appends pending on the stream, the state they lead to."""
        head = self._heads.get(stream_id)
        while head is not None:
            if head.state is not None:
                return head.state
            await self._drained(head)
            head = self._heads.get(stream_id)
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

    def pending(self, stream_id: str) -> bool:
        """True while an append queued on the stream has not settled."""
        return stream_id in self._heads

    async def settled(self, stream_id: str) -> None:
        """Returns once no append queued on the stream is pending; ``load`` then gives a
        committed state (what replaying a command's result needs)."""
        head = self._heads.get(stream_id)
        while head is not None:
            await self._drained(head)
            head = self._heads.get(stream_id)

    async def load_committed(self, stream_id: str) -> S:
        """The state with no queued append in it: waits for the stream's pending appends to
        settle first. An answer to a caller must come from here, never from ``load``'s head,
        whose appends may still fail."""
        while self.pending(stream_id):
            await self.settled(stream_id)
        return await self.load(stream_id)

    async def save(self, stream_id: str, state: S, records: Sequence[EventRecord]) -> S:
        """Append ``records`` on top of ``state`` (the state they were decided from) and return
        the new state once committed. Raises ``ConcurrencyError`` when someone else appended
        first."""
        return await (await self.queue(stream_id, state, records))

    async def queue(self, stream_id: str, state: S, records: Sequence[EventRecord]) -> Awaitable[S]:
        """Start the append of ``records`` on top of ``state`` and return what waits for its
        commit and gives the new state. With a pipelining store the append is queued before
        this returns, without a suspension, so appends queued from one task's decisions keep
        their order; otherwise this awaits the whole append."""
        pipeline = self._pipeline
        if pipeline is None or not records:
            return _ready(await self._save_now(stream_id, state, records))
        kind = self._kind
        before = kind.version(state)
        tail = self._tails.get(stream_id)
        link = Link(tail[1] if tail is not None and tail[0] is state else None)
        after = state
        for record in records:
            after = kind.evolve(after, record)
        snapshot = self._snapshot_of(stream_id, after) if self._hands_heads else None
        try:
            future = pipeline.enqueue(stream_id, before, records, link, head=snapshot)
        except BaseException:
            self._cache.pop(stream_id, None)
            head = self._heads.get(stream_id)
            if head is not None:
                head.state = None
            raise
        head = self._heads.get(stream_id)
        if head is None:
            head = self._heads[stream_id] = _Head(after)
        elif head.state is state:
            head.state = after
        else:  # decided from something else than the head: only the store can tell
            head.state = None
        head.pending += 1
        self._tails[stream_id] = (after, link)
        future.add_done_callback(partial(self._settle, stream_id, head, after, link))
        return self._committed(stream_id, head, future, before, after, snapshot)

    async def _committed(
        self,
        stream_id: str,
        head: _Head[S],
        future: asyncio.Future[list[EventRecord]],
        before: int,
        state: S,
        snapshot: Snapshot | None,
    ) -> S:
        try:
            await asyncio.shield(future)  # a caller that gives up does not withdraw the append
        except BaseException:
            # ``_settle`` drops the head too, but a future that failed at once may reach this
            # caller first, and its retry must not decide from the head.
            head.state = None
            self._cache.pop(stream_id, None)
            raise
        await self._snapshot(stream_id, before, state, snapshot)
        return state

    def _settle(
        self,
        stream_id: str,
        head: _Head[S],
        state: S,
        link: Link,
        future: asyncio.Future[list[EventRecord]],
    ) -> None:
        """An append queued by ``queue`` settled (callbacks run in commit order)."""
        head.pending -= 1
        if future.cancelled() or future.exception() is not None:
            # A conflict means the head is stale; any other failure leaves the outcome unknown.
            head.state = None
            self._cache.pop(stream_id, None)
        else:
            tail = self._tails.get(stream_id)
            if tail is not None and tail[1] is link:
                del self._tails[stream_id]
            cached = self._cache.get(stream_id)
            if cached is None or self._kind.version(cached) < self._kind.version(state):
                self._remember(stream_id, state)
        if head.pending == 0:
            if self._heads.get(stream_id) is head:
                del self._heads[stream_id]
            if head.idle is not None and not head.idle.done():
                head.idle.set_result(None)

    async def _drained(self, head: _Head[S]) -> None:
        if head.idle is None:
            head.idle = asyncio.get_running_loop().create_future()
        await asyncio.shield(head.idle)

    async def _save_now(self, stream_id: str, state: S, records: Sequence[EventRecord]) -> S:
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
        await self._snapshot(stream_id, before, state)
        return state

    async def _snapshot(
        self, stream_id: str, before: int, state: S, encoded: Snapshot | None = None
    ) -> None:
        """Snapshot a committed ``state`` when it crossed a multiple of ``snapshot_every``
        (``encoded``: that state's snapshot, when the append already made it)."""
        after = self._kind.version(state)
        if (
            self._snapshots is not None
            and after // self._snapshot_every > before // self._snapshot_every
        ):
            await self._snapshots.save_snapshot(encoded or self._snapshot_of(stream_id, state))

    def _snapshot_of(self, stream_id: str, state: S) -> Snapshot:
        return Snapshot(
            stream_id=stream_id,
            version=self._kind.version(state),
            schema=self._kind.snapshot_schema,
            state=msgspec.Raw(self._kind.encode_snapshot(state)),
        )

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
        head = self._heads.get(stream_id)
        if head is not None:
            head.state = None

    def _remember(self, stream_id: str, state: S) -> None:
        self._cache[stream_id] = state
        self._cache.move_to_end(stream_id)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


async def _ready(state: S) -> S:
    return state
