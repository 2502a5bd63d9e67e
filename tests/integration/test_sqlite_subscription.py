"""The SQLite subscription: what this store committed comes from memory while the reader keeps up;
anything else (another process's commits, a cancelled append, a reader far behind) from disk,
and either way every event exactly once, in position order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.records import EventMetadata, EventRecord
from plugins.sqlite.store import SqliteEventStore, SqliteSubscription
from tests.support import event_record as record


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteEventStore, SqliteEventStore]]:
    """Two stores on one file, as the API and the CLI (two processes) would open it."""
    first, second = SqliteEventStore(tmp_path), SqliteEventStore(tmp_path)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


class CountingReads:
    """Counts the subscription's reads from disk."""

    def __init__(self, store: SqliteEventStore) -> None:
        self.count = 0
        original = store._events_after

        async def counted(position: int) -> list[EventRecord]:
            self.count += 1
            return await original(position)

        store._events_after = counted  # type: ignore[method-assign]


async def drain(subscription: SqliteSubscription) -> list[EventRecord]:
    found: list[EventRecord] = []
    while (batch := await subscription.next_batch(0.05)) is not None:
        found.extend(batch.events)
    return found


async def test_a_reader_that_keeps_up_gets_this_stores_commits_without_reading_disk(
    stores: tuple[SqliteEventStore, SqliteEventStore],
) -> None:
    store, _ = stores
    await store.append("a", 0, [record("a", 1), record("a", 2)])
    subscription = store.subscribe("p", 0)
    reads = CountingReads(store)
    batch = await subscription.next_batch(1.0)
    assert batch is not None
    assert [(e.stream_id, e.version, e.position) for e in batch.events] == [
        ("a", 1, 1),
        ("a", 2, 2),
    ]
    assert reads.count == 0
    # Waiting, then woken by the next commit: again from memory.
    waiting = asyncio.ensure_future(subscription.next_batch(2.0))
    await asyncio.sleep(0.01)
    await store.append("b", 0, [record("b", 1)])
    batch = await waiting
    assert batch is not None
    assert [(e.stream_id, e.position) for e in batch.events] == [("b", 3)]
    assert reads.count == 0


async def test_subscribers_are_signalled_only_once_the_commits_records_are_in_memory(
    stores: tuple[SqliteEventStore, SqliteEventStore],
) -> None:
    """Else a subscriber woken by an earlier commit could look before this commit's appenders
    put their records in memory, find nothing new, and sleep through them: until the next
    commit, or its whole timeout when none comes (seen as 0.5 s lags in the lag benchmark)."""
    store, _ = stores
    newest_at_signal: list[int] = []
    signal = store._signal

    def spy() -> None:
        newest_at_signal.append(store._recent[-1].position if store._recent else 0)
        signal()

    store._signal = spy  # type: ignore[method-assign]
    appends = [store.append(f"s{n}", 0, [record(f"s{n}", 1)]) for n in range(20)]
    stored = [events[0] for events in await asyncio.gather(*appends)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert newest_at_signal, "a commit signals its subscribers"
    assert newest_at_signal[-1] == max(e.position for e in stored)
    assert newest_at_signal == sorted(newest_at_signal)


async def test_a_reader_caught_up_with_this_store_finds_another_stores_commits_by_the_timeout(
    stores: tuple[SqliteEventStore, SqliteEventStore],
) -> None:
    ours, other = stores
    await ours.append("a", 0, [record("a", 1)])
    subscription = ours.subscribe("p", 0)
    assert await subscription.next_batch(1.0) is not None  # caught up with our own commit
    await other.append("b", 0, [record("b", 1)])  # wakes nobody in ``ours``
    batch = await subscription.next_batch(0.05)
    assert batch is not None
    assert [(e.stream_id, e.position) for e in batch.events] == [("b", 2)]
    assert await subscription.next_batch(0.05) is None


async def test_commits_of_another_store_on_the_same_file_are_read_from_disk_in_order(
    stores: tuple[SqliteEventStore, SqliteEventStore],
) -> None:
    ours, other = stores
    await ours.append("a", 0, [record("a", 1)])
    await other.append("b", 0, [record("b", 1), record("b", 2)])
    await ours.append("a", 1, [record("a", 2)])
    await other.append("b", 2, [record("b", 3)])
    await ours.append("a", 2, [record("a", 3), record("a", 4)])
    got = await drain(ours.subscribe("p", 0))
    assert [e.position for e in got] == list(range(1, 8))
    assert [(e.stream_id, e.version) for e in got] == [
        ("a", 1),
        ("b", 1),
        ("b", 2),
        ("a", 2),
        ("b", 3),
        ("a", 3),
        ("a", 4),
    ]


async def test_a_cancelled_append_leaves_a_gap_in_memory_that_the_disk_fills(
    stores: tuple[SqliteEventStore, SqliteEventStore],
) -> None:
    store, _ = stores
    await store.append("a", 0, [record("a", 1)])
    # Cancelled after it was queued: the writer still commits it, but nobody hears the result.
    pending = asyncio.ensure_future(store.append("b", 0, [record("b", 1)]))
    await asyncio.sleep(0)
    pending.cancel()
    await store.append("c", 0, [record("c", 1)])
    got = await drain(store.subscribe("p", 0))
    assert [(e.stream_id, e.position) for e in got] == [("a", 1), ("b", 2), ("c", 3)]


async def test_a_reader_behind_the_memory_reads_disk_then_catches_up(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path, batch_size=10)  # keeps the last 40 records in memory
    await store.start()
    try:
        for version in range(1, 101):
            await store.append("a", version - 1, [record("a", version)])
        subscription = store.subscribe("p", 5)
        reads = CountingReads(store)
        got = await drain(subscription)
        assert [e.version for e in got] == list(range(6, 101))
        # 95 events in batches of 10: the first 6 batches (to position 65) from disk, the rest
        # from memory, plus the final empty look.
        assert reads.count < 10
    finally:
        await store.close()


async def test_records_read_from_disk_come_back_field_for_field(
    stores: tuple[SqliteEventStore, SqliteEventStore],
) -> None:
    """A batch read from disk is built column by column (``select_batch``): every field, with
    text that JSON must escape, instants at the calendar's ends and before 1970, data byte for
    byte and metadata, equals what ``read`` returns."""
    ours, other = stores
    stream = 'odd "stream" \\ \n\t\x01 caf\u00e9 \u20ac'
    instants = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 6, 19, 47, 2, 7_059, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
    data = [
        b'{"q":"\\"","b":"\\\\","u":"\\u0001\\ud83d\\ude00"}',
        b"[ 1 ,2.50,\t-0.0 ]",
        b'"text"',
        b'{"euro":"\xe2\x82\xac"}',
        b"null",
    ]
    metadata = EventMetadata(correlation_id='c"1', actor="\\bob", command_id="k\n")
    sent = [
        record(stream, version, at=at, data=payload, metadata=metadata, event_id=f'e"{version}')
        for version, (at, payload) in enumerate(zip(instants, data, strict=True), start=1)
    ]
    await other.append(stream, 0, sent)  # not in ``ours``'s memory: read from disk
    reads = CountingReads(ours)
    got = await drain(ours.subscribe("p", 0))
    assert reads.count > 0
    assert got == await ours.read(stream)
    assert [e.occurred_at for e in got] == instants
    assert [bytes(e.data) for e in got] == data
    assert {(e.stream_id, e.metadata) for e in got} == {(stream, metadata)}
