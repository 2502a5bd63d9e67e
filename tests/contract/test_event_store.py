"""The event store and snapshot store contract, run against every backend in conftest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol
from uuid import uuid4

import msgspec
import pytest

from core.errors import ConcurrencyError
from core.ports import EventStore, EventSubscription, SnapshotStore
from core.records import EventMetadata, EventRecord, Snapshot
from tests.support import RECORDS_T0
from tests.support import event_record as record

T0 = RECORDS_T0
WAIT = 10.0  # generous: only a broken store ever waits this long


class Store(EventStore, SnapshotStore, Protocol):
    pass


def new_stream() -> str:
    return f"account-{uuid4().hex}"


async def append_new(store: Store, stream_id: str, count: int, after: int = 0) -> list[EventRecord]:
    records = [record(stream_id, after + n) for n in range(1, count + 1)]
    return list(await store.append(stream_id, after, records))


async def collect(subscription: EventSubscription, event_ids: set[str]) -> list[EventRecord]:
    """This test's events from the subscription (a shared broker may carry others too)."""
    found: list[EventRecord] = []
    while len(found) < len(event_ids):
        batch = await subscription.next_batch(timeout=WAIT)
        assert batch is not None, f"only {len(found)} of {len(event_ids)} events arrived"
        found.extend(e for e in batch.events if e.event_id in event_ids)
    return found


# -- append and read ------------------------------------------------------------------------


async def test_append_and_read_round_trip_every_field(event_store: Store) -> None:
    stream = new_stream()
    metadata = EventMetadata(
        correlation_id="corr-1",
        causation_id="cause-1",
        actor="alice",
        command_id="cmd-1",
        command_hash="sha256:abc",
    )
    sent = [
        record(stream, 1, data=b'{"amount":1999,"note":"caf\xc3\xa9 \xe2\x82\xac","n":[1,2]}'),
        record(stream, 2, metadata=metadata, at=T0 + timedelta(microseconds=1)),
        record(stream, 3, data=b"{}"),
    ]

    stored = list(await event_store.append(stream, 0, sent))

    assert [r.position for r in stored] == sorted(r.position for r in stored)
    assert all(r.position > 0 for r in stored)
    assert stored == [
        msgspec.structs.replace(s, position=r.position) for s, r in zip(sent, stored, strict=True)
    ]
    read = await event_store.read(stream)
    assert read == stored
    assert read[1].metadata == metadata
    assert read[0].data == sent[0].data
    assert read[1].occurred_at == T0 + timedelta(microseconds=1)
    assert read[1].occurred_at.utcoffset() == timedelta(0)


async def test_any_instant_and_the_data_as_written_come_back_from_reads_and_subscriptions(
    event_store: Store,
) -> None:
    """Instants before 1970 and at the ends of the calendar, to the microsecond, and data kept
    byte for byte (spaces, escapes), through ``read`` and through a subscription."""
    stream = new_stream()
    instants = [
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        T0 + timedelta(microseconds=7),
    ]
    data = [
        b'{ "amount" : 1 ,\n "note":"caf\\u00e9 \\"q\\" \\\\" }',
        b'{"n":[1, 2.50, -0.0, 1e5]}',
        b"{}",
        b'{"text":"\xe2\x82\xac\\n"}',
        b'{"amount":100}',
    ]
    sent = [
        record(stream, version, at=at, data=payload)
        for version, (at, payload) in enumerate(zip(instants, data, strict=True), start=1)
    ]
    await event_store.append(stream, 0, sent)

    read = await event_store.read(stream)
    subscription = event_store.subscribe(f"group-{uuid4().hex}", 0)
    try:
        subscribed = await collect(subscription, {r.event_id for r in sent})
    finally:
        await subscription.close()
    for got in (read, sorted(subscribed, key=lambda r: r.version)):
        assert [r.occurred_at for r in got] == instants
        assert [bytes(r.data) for r in got] == data


async def test_positions_count_up_from_one(event_store: Store, global_positions: bool) -> None:
    """One global counter from 1 (SQLite, memory); on Kafka the offset + 1 in the contract
    topic's one partition, which transaction markers also occupy: increasing, with gaps."""
    first = await append_new(event_store, new_stream(), 2)
    second = await append_new(event_store, new_stream(), 1)
    positions = [r.position for r in first + second]
    if global_positions:
        assert positions == [1, 2, 3]
    else:
        assert positions[0] == 1
        assert positions == sorted(set(positions))


async def test_a_stale_expected_version_raises_and_writes_nothing(event_store: Store) -> None:
    stream = new_stream()
    stored = await append_new(event_store, stream, 2)

    for expected in (0, 1, 5):
        with pytest.raises(ConcurrencyError) as raised:
            await event_store.append(stream, expected, [record(stream, expected + 1)])
        assert (raised.value.stream_id, raised.value.expected, raised.value.actual) == (
            stream,
            expected,
            2,
        )

    assert await event_store.read(stream) == stored
    assert await event_store.stream_version(stream) == 2


async def test_a_new_stream_is_at_version_zero(event_store: Store) -> None:
    stream = new_stream()
    with pytest.raises(ConcurrencyError) as raised:
        await event_store.append(stream, 1, [record(stream, 2)])
    assert (raised.value.expected, raised.value.actual) == (1, 0)
    assert await event_store.read(stream) == []


@pytest.mark.parametrize("versions", [[2, 3], [1, 3], [1, 1], [0]])
async def test_versions_must_follow_the_expected_version(
    event_store: Store, versions: list[int]
) -> None:
    stream = new_stream()
    with pytest.raises(ValueError, match="version"):
        await event_store.append(stream, 0, [record(stream, v) for v in versions])
    assert await event_store.stream_version(stream) == 0
    assert await event_store.read(stream) == []


async def test_malformed_appends_are_rejected_whole(event_store: Store) -> None:
    stream = new_stream()
    await append_new(event_store, stream, 1)
    taken = (await event_store.read(stream))[0].event_id
    malformed = [
        [record(stream, 2), record(new_stream(), 3)],  # a record of another stream
        [record(stream, 2), record(stream, 3, at=datetime(2026, 1, 1))],  # noqa: DTZ001 (naive)
        [record(stream, 2, event_id="same"), record(stream, 3, event_id="same")],
        [record(stream, 2), record(stream, 3, event_id=taken)],  # an id already stored
    ]
    for records in malformed:
        with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
            await event_store.append(stream, 1, records)
    assert await event_store.stream_version(stream) == 1


async def test_an_empty_append_checks_the_version_and_writes_nothing(event_store: Store) -> None:
    stream = new_stream()
    assert list(await event_store.append(stream, 0, [])) == []
    with pytest.raises(ConcurrencyError):
        await event_store.append(stream, 3, [])
    assert await event_store.stream_version(stream) == 0


async def test_concurrent_appends_with_one_expected_version_only_one_wins(
    event_store: Store,
) -> None:
    stream = new_stream()
    attempts = [[record(stream, 1)] for _ in range(20)]

    results = await asyncio.gather(
        *(event_store.append(stream, 0, records) for records in attempts), return_exceptions=True
    )

    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(error, ConcurrencyError) for error in losers)
    assert await event_store.read(stream) == list(winners[0])


async def test_a_conflict_among_concurrent_appends_leaves_the_others_stored(
    event_store: Store,
) -> None:
    streams = [new_stream() for _ in range(12)]
    for stream in streams:
        await append_new(event_store, stream, 1)
    conflicting = streams[5]

    results = await asyncio.gather(
        *(
            event_store.append(
                s, 0 if s == conflicting else 1, [record(s, 1 if s == conflicting else 2)]
            )
            for s in streams
        ),
        return_exceptions=True,
    )

    assert isinstance(results[5], ConcurrencyError)
    for stream, result in zip(streams, results, strict=True):
        if stream == conflicting:
            assert await event_store.stream_version(stream) == 1
        else:
            assert not isinstance(result, BaseException)
            assert await event_store.stream_version(stream) == 2
            assert (await event_store.read(stream))[1:] == list(result)


async def test_multi_event_appends_in_one_batch_are_atomic(event_store: Store) -> None:
    streams = [new_stream() for _ in range(6)]

    results = await asyncio.gather(
        *(
            # The third append repeats an event id inside the batch: it alone is rejected.
            event_store.append(
                s, 0, [record(s, 1, event_id=f"dup-{s}"), record(s, 2, event_id=f"dup-{s}")]
            )
            if i == 3
            else event_store.append(s, 0, [record(s, 1), record(s, 2), record(s, 3)])
            for i, s in enumerate(streams)
        ),
        return_exceptions=True,
    )

    assert isinstance(results[3], ValueError)
    versions = [await event_store.stream_version(s) for s in streams]
    assert versions == [3, 3, 3, 0, 3, 3]


async def test_read_after_a_version_and_until_a_time(event_store: Store) -> None:
    stream = new_stream()
    minute = timedelta(minutes=1)
    await event_store.append(
        stream, 0, [record(stream, v, at=T0 + v * minute) for v in range(1, 6)]
    )

    async def versions(after: int = 0, until: datetime | None = None) -> list[int]:
        return [r.version for r in await event_store.read(stream, after, until)]

    assert await versions() == [1, 2, 3, 4, 5]
    assert await versions(after=2) == [3, 4, 5]
    assert await versions(after=5) == []
    assert await versions(until=T0 + 2 * minute) == [1, 2]  # inclusive
    assert await versions(until=T0 + 2 * minute - timedelta(microseconds=1)) == [1]
    assert await versions(after=1, until=T0 + 4 * minute) == [2, 3, 4]
    assert await versions(until=T0) == []
    # The same instant written in another zone.
    paris = timezone(timedelta(hours=1))
    assert await versions(until=(T0 + 3 * minute).astimezone(paris)) == [1, 2, 3]


async def test_stream_version(event_store: Store) -> None:
    stream = new_stream()
    assert await event_store.stream_version(stream) == 0
    await append_new(event_store, stream, 3)
    await append_new(event_store, stream, 2, after=3)
    assert await event_store.stream_version(stream) == 5
    assert await event_store.stream_version(new_stream()) == 0


async def test_read_command_finds_a_commands_events_however_old(event_store: Store) -> None:
    stream, other = new_stream(), new_stream()

    def keyed(stream_id: str, version: int, command_id: str | None) -> EventRecord:
        return record(stream_id, version, metadata=EventMetadata(command_id=command_id))

    first = [keyed(stream, 1, "cmd-a"), keyed(stream, 2, "cmd-a")]
    await event_store.append(stream, 0, first)
    await event_store.append(stream, 2, [keyed(stream, 3, None), keyed(stream, 4, "cmd-b")])
    await event_store.append(other, 0, [keyed(other, 1, "cmd-a")])

    found = await event_store.read_command(stream, "cmd-a")
    assert [(r.version, r.event_id) for r in found] == [
        (1, first[0].event_id),
        (2, first[1].event_id),
    ]
    assert [r.version for r in await event_store.read_command(stream, "cmd-b")] == [4]
    assert [r.version for r in await event_store.read_command(other, "cmd-a")] == [1]
    assert await event_store.read_command(stream, "cmd-c") == []
    assert await event_store.read_command(new_stream(), "cmd-a") == []


# -- subscribe --------------------------------------------------------------------------------


async def test_subscribe_from_zero_sees_every_event_in_stream_order(event_store: Store) -> None:
    streams = [new_stream() for _ in range(3)]
    # More than one subscription batch (1,000 events) in all.
    appended = await append_new(event_store, streams[0], 1100)
    appended += await append_new(event_store, streams[1], 2)
    appended += await append_new(event_store, streams[2], 3)
    appended += await append_new(event_store, streams[1], 2, after=2)

    subscription = event_store.subscribe(f"group-{uuid4().hex}", 0)
    try:
        seen = await collect(subscription, {r.event_id for r in appended})
    finally:
        await subscription.close()

    assert sorted(seen, key=lambda r: r.event_id) == sorted(appended, key=lambda r: r.event_id)
    for stream in streams:
        versions = [r.version for r in seen if r.stream_id == stream]
        assert versions == sorted(versions)


async def test_subscribe_from_a_checkpoint_sees_only_later_events(event_store: Store) -> None:
    stream = new_stream()
    first = await append_new(event_store, stream, 3)
    subscription = event_store.subscribe(f"group-{uuid4().hex}", 0)
    batch = await subscription.next_batch(timeout=WAIT)
    assert batch is not None
    assert batch.events == first
    await subscription.commit(batch)
    await subscription.close()

    later = await append_new(event_store, stream, 2, after=3)
    resumed = event_store.subscribe(f"group-{uuid4().hex}", batch.checkpoint)
    try:
        seen = await collect(resumed, {r.event_id for r in later})
        assert seen == later
        assert await resumed.next_batch(timeout=0.05) is None
    finally:
        await resumed.close()


async def test_a_waiting_subscriber_wakes_on_a_new_append(event_store: Store) -> None:
    stream = new_stream()
    before = await append_new(event_store, stream, 1)
    subscription = event_store.subscribe(f"group-{uuid4().hex}", before[-1].position)
    try:
        waiting = asyncio.create_task(subscription.next_batch(timeout=60))
        await asyncio.sleep(0.01)  # let it find nothing and start waiting
        assert not waiting.done()
        appended = await append_new(event_store, stream, 1, after=1)
        batch = await asyncio.wait_for(waiting, WAIT)
        assert batch is not None
        assert batch.events == appended
        assert batch.checkpoint >= appended[0].position
    finally:
        await subscription.close()


async def test_next_batch_returns_none_when_nothing_arrives(event_store: Store) -> None:
    appended = await append_new(event_store, new_stream(), 1)
    subscription = event_store.subscribe(f"group-{uuid4().hex}", appended[-1].position)
    try:
        assert await subscription.next_batch(timeout=0.05) is None
    finally:
        await subscription.close()


# -- snapshots --------------------------------------------------------------------------------


def snapshot(stream_id: str, version: int, state: Any) -> Snapshot:
    return Snapshot(stream_id, version, schema=2, state=msgspec.Raw(msgspec.json.encode(state)))


async def test_snapshots_save_load_and_overwrite(event_store: Store) -> None:
    stream = new_stream()
    assert await event_store.load_snapshot(stream) is None

    first = snapshot(stream, 100, {"balance": 1234, "status": "open"})
    await event_store.save_snapshot(first)
    assert await event_store.load_snapshot(stream) == first

    newer = snapshot(stream, 200, {"balance": 99, "status": "closed"})
    await event_store.save_snapshot(newer)
    assert await event_store.load_snapshot(stream) == newer
    assert await event_store.load_snapshot(new_stream()) is None


async def test_an_older_snapshot_does_not_replace_a_newer_one(event_store: Store) -> None:
    stream = new_stream()
    newer = snapshot(stream, 200, {"balance": 2})
    await event_store.save_snapshot(newer)
    await event_store.save_snapshot(snapshot(stream, 100, {"balance": 1}))
    assert await event_store.load_snapshot(stream) == newer
