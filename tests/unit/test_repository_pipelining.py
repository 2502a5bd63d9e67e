"""The repository on a store that pipelines appends: which queued appends it chains, and which
stores it pipelines on at all."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest

from core.errors import ConcurrencyError
from core.records import EventRecord
from core.repository import Repository
from plugins.memory.store import MemoryEventStore
from tests.held_store import HeldStore
from tests.support import event_record


@dataclass(frozen=True)
class Tally:
    version: int = 0


class TallyKind:
    """The smallest aggregate kind: its state is its version."""

    snapshot_schema = 1

    def initial(self, stream_id: str) -> Tally:
        return Tally()

    def evolve(self, state: Tally, record: EventRecord) -> Tally:
        return Tally(record.version)

    def version(self, state: Tally) -> int:
        return state.version

    def encode_snapshot(self, state: Tally) -> bytes:
        return str(state.version).encode()

    def decode_snapshot(self, data: bytes) -> Tally:
        return Tally(int(data))


def _stream() -> str:
    return f"tally-{uuid4().hex}"


async def _overtaken(store: HeldStore, tallies: Repository[Tally], stream: str) -> Awaitable[Tally]:
    """An append queued (and held) on the empty stream, after which another writer appends
    the stream's first event behind the repository's back: once released, it conflicts."""
    store.holding = True
    stale = await tallies.queue(stream, await tallies.load(stream), [event_record(stream, 1)])
    await store.append(stream, 0, [event_record(stream, 1)])
    return stale


async def test_an_append_decided_from_a_failed_one_is_refused_at_the_version_it_expects() -> None:
    """Another writer moves the stream on behind the repository's back, by as many events as
    the first queued append carries: the one decided on top of it expects the version the
    stream is now at, but it must not be written once the first failed."""
    store = HeldStore()
    tallies = Repository(store, TallyKind())
    stream = _stream()
    stale = await _overtaken(store, tallies, stream)
    on_top = await tallies.queue(stream, await tallies.load(stream), [event_record(stream, 2)])
    first, second = store.queued
    assert (first.expected, second.expected) == (0, 1)
    assert first.link is not None
    assert second.link is not None
    assert first.link.after is None
    assert second.link.after is first.link

    store.release()
    with pytest.raises(ConcurrencyError):
        await stale
    store.release()
    with pytest.raises(ConcurrencyError):
        await on_top
    assert [r.version for r in await store.read(stream)] == [1]


async def test_an_append_decided_from_the_store_after_a_failure_is_not_chained_to_it() -> None:
    """The failed append would have ended at the version the stream is at now: an append
    decided afterwards from what the store holds expects that version, and is written."""
    store = HeldStore()
    tallies = Repository(store, TallyKind())
    stream = _stream()
    stale = await _overtaken(store, tallies, stream)
    store.release()
    with pytest.raises(ConcurrencyError):
        await stale

    fresh = await tallies.load(stream)
    assert fresh == Tally(1)
    written = await tallies.queue(stream, fresh, [event_record(stream, 2)])
    (queued,) = store.queued
    assert queued.expected == 1
    assert queued.link is not None
    assert queued.link.after is None
    store.release()
    assert await written == Tally(2)
    assert [r.version for r in await store.read(stream)] == [1, 2]


class Forwarding:
    """A store that counts the appends it takes and hands everything else to the memory store
    it wraps, as a decorator in front of a store does."""

    def __init__(self) -> None:
        self.inner = MemoryEventStore()
        self.appends = 0

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[EventRecord]
    ) -> Sequence[EventRecord]:
        self.appends += 1
        return await self.inner.append(stream_id, expected_version, events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_store_that_forwards_enqueue_to_the_store_it_wraps_is_written_through_append() -> (
    None
):
    wrapper = Forwarding()
    tallies = Repository(wrapper, TallyKind())  # type: ignore[arg-type]
    assert not tallies.pipelined
    stream = _stream()
    state = await tallies.save(stream, Tally(), [event_record(stream, 1)])
    done = await tallies.queue(stream, state, [event_record(stream, 2)])
    assert await done == Tally(2)
    assert wrapper.appends == 2
    assert [r.version for r in await wrapper.inner.read(stream)] == [1, 2]


async def test_a_store_whose_class_implements_enqueue_is_pipelined() -> None:
    store = HeldStore()
    store.holding = True
    tallies = Repository(store, TallyKind())
    assert tallies.pipelined
    stream = _stream()
    committed = await tallies.queue(stream, Tally(), [event_record(stream, 1)])
    assert len(store.queued) == 1  # queued, not written: the caller may go on meanwhile
    assert await tallies.load(stream) == Tally(1)
    store.release()
    assert await committed == Tally(1)


class _HeadsSeen(MemoryEventStore):
    """A pipelining store that records the ``head`` each queued append hands it."""

    def __init__(self, keeps_heads: bool) -> None:
        super().__init__()
        self.keeps_heads = keeps_heads
        self.heads: list[Any] = []

    def enqueue(self, *args: Any, head: Any = None, **options: Any) -> Any:
        self.heads.append(head)
        return super().enqueue(*args, head=head, **options)


@pytest.mark.parametrize("keeps_heads", [True, False])
async def test_a_queued_append_hands_its_state_only_to_a_store_that_keeps_heads(
    keeps_heads: bool,
) -> None:
    store = _HeadsSeen(keeps_heads)
    tallies = Repository(store, TallyKind())
    stream = _stream()
    state = await tallies.queue(stream, await tallies.load(stream), [event_record(stream, 1)])
    await state
    state = await tallies.queue(stream, await tallies.load(stream), [event_record(stream, 2)])
    await state

    if keeps_heads:
        assert [(h.stream_id, h.version, bytes(h.state)) for h in store.heads] == [
            (stream, 1, b"1"),
            (stream, 2, b"2"),
        ]
    else:
        assert store.heads == [None, None]
