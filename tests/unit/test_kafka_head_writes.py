"""The stream heads a partition writer writes (head_writes.py), against the fake broker of
test_kafka_writer_faults.py: in the events' transaction, acknowledged only once the heads
partition shows the commit too, and repaired after a commit whose outcome was unknown and at a
take-over."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.errors import StoreUnavailableError
from core.records import Snapshot, encode_record
from plugins.kafka import store as store_module
from plugins.kafka import take_overs as take_overs_module
from plugins.kafka.config import INDEX_FILE, KafkaConfig
from plugins.kafka.heads import WATERMARK_KEY, StreamHead, decode_head, decode_watermark
from plugins.kafka.store import KafkaEventStore
from tests.support import appends_checked_at, event_record
from tests.unit import test_kafka_writer_faults as faults
from tests.unit.test_kafka_writer_faults import (
    ANSWER_BOUND,
    TOPIC,
    Entry,
    FakeBroker,
    FakeProducer,
    Fault,
    _lands_then_times_out,
    _stream,
    _until,
)

broker = faults.broker  # the fake broker's fixtures
store = faults.store

STATE = msgspec.Raw(b'{"balance":300}')


def _head(broker: FakeBroker, stream_id: str) -> StreamHead | None:
    return decode_head(broker.committed_heads().get(stream_id.encode()))


def _watermark(broker: FakeBroker) -> int | None:
    watermark = decode_watermark(broker.committed_heads().get(WATERMARK_KEY))
    return None if watermark is None else watermark.next_offset


def _offset(broker: FakeBroker, stream_id: str, version: int) -> int:
    """The events partition's offset of the stream's event ``version``."""
    key = f'"stream_id":"{stream_id}","version":{version},'.encode()
    return next(n for n, e in enumerate(broker.log) if e.value and key in e.value)


async def test_the_heads_and_the_watermark_are_written_in_the_events_transaction(
    store: KafkaEventStore, broker: FakeBroker
) -> None:
    seen: list[tuple[list[Entry], list[Entry]]] = []

    def at_commit(producer: FakeProducer) -> None:  # what the transaction holds, uncommitted
        open_ = [[e for e in log if e.state == "open"] for log in (broker.log, broker.heads)]
        seen.append((open_[0], open_[1]))

    broker.arm("commit", at_commit)
    stream = _stream()
    head = Snapshot(stream, 2, 7, STATE)
    records = [event_record(stream, 1), event_record(stream, 2)]
    await asyncio.wait_for(store.enqueue(stream, 0, records, head=head), ANSWER_BOUND)

    ((events, heads),) = seen
    assert [e.value for e in events] == [encode_record(r) for r in records]
    # The last watermark known committed again first (the heads partition joins the
    # transaction with the events), the stream's head, the new watermark.
    assert [e.key for e in heads] == [WATERMARK_KEY, stream.encode(), WATERMARK_KEY]
    last = _offset(broker, stream, 2)
    assert _head(broker, stream) == StreamHead(2, last, 7, STATE)
    assert _watermark(broker) == last + 1 == len(broker.log)
    assert all(e.state == "committed" for e in events + heads)

    # Without a state from the append: where the stream's events must be replayed from.
    plain = _stream()
    await store.append(plain, 0, [event_record(plain, 1), event_record(plain, 2)])
    first, last = _offset(broker, plain, 1), _offset(broker, plain, 2)
    assert _head(broker, plain) == StreamHead(2, last, replay_from=first)
    assert _watermark(broker) == last + 1


def _heads_marker_lost(then_times_out: bool) -> Fault:
    def fault(producer: FakeProducer) -> None:
        producer.broker.lose_heads_marker = True
        if then_times_out:
            _lands_then_times_out(producer)

    return fault


@pytest.mark.parametrize("timed_out", [True, False], ids=["commit-timed-out", "commit-answered"])
async def test_a_commit_whose_heads_were_lost_is_not_acknowledged_and_its_heads_are_repaired(
    store: KafkaEventStore, broker: FakeBroker, timed_out: bool
) -> None:
    """The markers diverge: the events partition commits, the heads partition's marker is
    lost (and the next producer's start aborts what it holds open). Whether or not the commit
    call answered, the append is not acknowledged (the heads partition does not show the
    commit), and the next transaction writes again the heads of the streams at or past the
    last watermark known committed, from the index and its snapshots."""
    # The two appends queue up while the writer is in an earlier transaction, so that they
    # share the next one, whose heads marker is lost.
    entered, gate = threading.Event(), threading.Event()

    def held(producer: FakeProducer) -> None:
        entered.set()
        gate.wait(ANSWER_BOUND)

    broker.arm("begin", held)
    broker.arm("commit", lambda producer: None, _heads_marker_lost(timed_out))
    before = _stream()
    earlier = store.enqueue(before, 0, [event_record(before, 1)])
    assert await asyncio.to_thread(entered.wait, ANSWER_BOUND)
    lost, other = _stream(), _stream()
    batch = [
        store.enqueue(lost, 0, [event_record(lost, 1)], head=Snapshot(lost, 1, 7, STATE)),
        store.enqueue(other, 0, [event_record(other, 1), event_record(other, 2)]),
    ]
    gate.set()
    await asyncio.wait_for(earlier, ANSWER_BOUND)
    covered = _watermark(broker)
    answers = await asyncio.wait_for(asyncio.gather(*batch, return_exceptions=True), 30)
    assert all(isinstance(a, StoreUnavailableError) for a in answers), answers
    assert "may or may not be stored" in str(answers[0])
    # The events landed, their heads did not.
    assert [r.stream_id for r in broker.committed()][-3:] == [lost, other, other]
    assert _head(broker, lost) is None
    assert _watermark(broker) == covered
    await store.save_snapshot(Snapshot(lost, 1, 7, STATE))  # the local snapshot cache

    heads_before = len(broker.heads)
    third = _stream()
    await store.append(third, 0, [event_record(third, 1)])

    repaired = [e.key for e in broker.heads[heads_before:] if e.state == "committed"]
    assert repaired[0] == WATERMARK_KEY  # the last one known committed, written again
    assert sorted(repaired[1:3]) == sorted([lost.encode(), other.encode()])
    assert repaired[3:] == [third.encode(), WATERMARK_KEY]  # in the same transaction
    assert _head(broker, lost) == StreamHead(1, _offset(broker, lost, 1), 7, STATE)
    assert _head(broker, other) == StreamHead(
        2, _offset(broker, other, 2), replay_from=_offset(broker, other, 1)
    )
    assert _watermark(broker) == _offset(broker, third, 1) + 1
    # Nothing below the last watermark known committed is written again.
    assert before.encode() not in repaired

    # Repaired once: the next transaction writes its own head only.
    heads_before = len(broker.heads)
    await store.append(third, 1, [event_record(third, 2)])
    written = [e.key for e in broker.heads[heads_before:]]
    assert written == [WATERMARK_KEY, third.encode(), WATERMARK_KEY]


async def test_a_take_over_writes_the_heads_past_the_last_watermark(
    broker: FakeBroker, tmp_path: Path
) -> None:
    """A topic written before the heads topic existed (no watermark at all): the take-over
    writes every stream's head, and a watermark at the partition's end, before it accepts an
    append. A later take-over finds that watermark and writes nothing."""
    streams = [_stream() for _ in range(3)]
    for version in (1, 2):
        for stream in streams:
            broker.log.append(Entry(encode_record(event_record(stream, version)), "committed"))
    config = KafkaConfig(
        bootstrap="fake:9092", index_path=tmp_path / INDEX_FILE, topic=TOPIC, partitions=1
    )
    first = KafkaEventStore(config)
    await first.start()
    await first.close()
    for stream in streams:
        offsets = [_offset(broker, stream, v) for v in (1, 2)]
        assert _head(broker, stream) == StreamHead(2, offsets[1], replay_from=offsets[0])
    assert _watermark(broker) == len(broker.log)

    written = len(broker.heads)
    second = KafkaEventStore(config)
    await second.start()
    await second.close()
    assert len(broker.heads) == written


def _marker_lost(partition: str) -> Fault:
    """The commit is answered, and the broker restarting under it skips the marker of one
    partition (``events`` or ``heads``): the next producer's start aborts what it holds."""

    def fault(producer: FakeProducer) -> None:
        if partition == "events":
            producer.broker.lose_events_marker = True
        else:
            producer.broker.lose_heads_marker = True

    return fault


async def _left_divergent(
    broker: FakeBroker, config: KafkaConfig, lost: str, *, states: bool = False
) -> tuple[str, str]:
    """An owner whose last commit diverged (``lost``: the partition whose marker was lost),
    stopped before a transaction of its own could repair the heads: the stream it left
    intact, and the one of that commit (versions 2 and 3 on top of 1). With ``states``, each
    append carries the stream's state, which its head holds."""
    owner = KafkaEventStore(config)
    await owner.start()

    def append(stream: str, versions: list[int]) -> asyncio.Future[Any]:
        records = [event_record(stream, v) for v in versions]
        head = Snapshot(stream, versions[-1], 7, STATE) if states else None
        return owner.enqueue(stream, versions[0] - 1, records, head=head)

    kept, moved = _stream(), _stream()
    await append(kept, [1])
    await append(moved, [1])
    broker.arm("commit", _marker_lost(lost))
    with pytest.raises(StoreUnavailableError, match="may or may not"):
        await asyncio.wait_for(append(moved, [2, 3]), ANSWER_BOUND)
    await owner.close()
    return kept, moved


@pytest.mark.parametrize("lost", ["events", "heads"])
async def test_a_take_over_repairs_the_heads_of_a_divergent_commit_its_owner_left(
    broker: FakeBroker, tmp_path: Path, lost: str
) -> None:
    """The markers of the owner's last commit diverged (its events aborted and its heads
    committed, or the reverse), and the owner stopped before its next transaction could
    repair them. The next owner's take-over writes the heads again from its index, so a node
    started from the heads afterwards knows the versions the events partition holds."""
    config = KafkaConfig(
        bootstrap="fake:9092", index_path=tmp_path / INDEX_FILE, topic=TOPIC, partitions=1
    )
    kept, moved = await _left_divergent(broker, config, lost)
    committed = [(r.stream_id, r.version) for r in broker.committed()]
    first = _offset(broker, moved, 1)
    if lost == "events":  # heads for events the partition does not have
        assert (moved, 2) not in committed
        head = _head(broker, moved)
        assert head is not None
        assert head.version == 3
        assert _watermark(broker) == len(broker.log) - 1  # before the aborting record
        true = StreamHead(1, first, replay_from=first)
    else:  # events without their heads
        assert (moved, 3) in committed
        assert _head(broker, moved) == StreamHead(1, first, replay_from=first)
        last = _offset(broker, moved, 3)
        true = StreamHead(3, last, replay_from=first)

    successor = KafkaEventStore(config)  # the same node again: its index is whole
    await successor.start()
    await successor.close()
    assert _head(broker, moved) == true
    assert _head(broker, kept) == StreamHead(1, _offset(broker, kept, 1), replay_from=0)

    fresh = KafkaEventStore(replace(config, index_path=tmp_path / "fresh" / INDEX_FILE))
    await fresh.start()
    try:
        assert await fresh.stream_version(moved) == true.version
        wrong = 3 if lost == "events" else 1  # the version its heads claimed, or had
        await appends_checked_at(fresh, moved, true.version, wrong)
    finally:
        await fresh.close()


async def test_a_fresh_owner_repairs_heads_without_events_once_it_has_read_the_history(
    broker: FakeBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next owner starts from the heads (an empty index) and loads the head of events the
    partition does not have. Its take-over finds that head contradicted in the topic, and fails
    until the history is read (only then does its index say what the head should be); then it
    writes the head again and forgets the one it loaded."""
    config = KafkaConfig(
        bootstrap="fake:9092", index_path=tmp_path / INDEX_FILE, topic=TOPIC, partitions=1
    )
    kept, moved = await _left_divergent(broker, config, "events", states=True)
    monkeypatch.setattr(store_module, "START_BOUND", 0.5)  # the history is read after it
    monkeypatch.setattr(take_overs_module, "_TAKE_OVER_RETRY", 0.05)
    fresh = KafkaEventStore(replace(config, index_path=tmp_path / "fresh" / INDEX_FILE))
    await fresh.start()
    try:
        first = _offset(broker, moved, 1)
        await _until(lambda: _head(broker, moved) == StreamHead(1, first, replay_from=first))
        await _until(lambda: fresh.writer.takeovers == 1)
        assert await fresh.history_pending() == {}
        assert await fresh.stream_version(moved) == 1
        assert _head(broker, kept) == StreamHead(1, _offset(broker, kept, 1), 7, STATE)
        assert await fresh.load_snapshot(moved) is None  # the state it loaded is forgotten
        await appends_checked_at(fresh, moved, 1, 3)
    finally:
        await fresh.close()
