"""A commit whose markers diverged, left by an owner that stopped before repairing it, on the real
broker: the heads partition committed the transaction's stream heads and watermark while the
events partition aborted its events (a broker restart skipped that marker, and the next
producer's start aborted what the partition held open). The state is built directly, with a
transactional producer of the test's own; the next owner's take-over writes the heads again
from its index, so a node started from the heads afterwards checks appends against the versions
the events partition holds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Producer

from core.records import EventRecord, Snapshot, decode_record, encode_record
from plugins.kafka import store as store_module
from plugins.kafka import take_overs as take_overs_module
from plugins.kafka.config import KafkaConfig
from plugins.kafka.heads import (
    WATERMARK_KEY,
    StreamHead,
    Watermark,
    decode_head,
    decode_watermark,
    encode_head,
    encode_watermark,
)
from plugins.kafka.store import KafkaEventStore
from tests.kafka.helpers import read_topic, unique_topic
from tests.kafka.test_kafka_store import config_for
from tests.support import appends_checked_at, event_record

pytestmark = pytest.mark.kafka

TIMEOUT = 30.0
STREAM, OTHER = "account-moved", "account-kept"


def _heads(bootstrap: str, topic: str) -> dict[bytes, bytes | None]:
    """The heads partition as compaction leaves it: each key's last committed value."""
    return {m.key(): m.value() for m in read_topic(bootstrap, f"{topic}.heads")}


def _head(bootstrap: str, topic: str, stream: str) -> StreamHead | None:
    return decode_head(_heads(bootstrap, topic).get(stream.encode()))


def _offsets(bootstrap: str, topic: str, stream: str) -> dict[int, int]:
    """The stream's committed events: version → offset."""
    messages = [m for m in read_topic(bootstrap, topic) if m.key() == stream.encode()]
    return {decode_record(m.value()).version: m.offset() for m in messages}


def _diverge(
    config: KafkaConfig, records: list[EventRecord], first: int, state: bytes | None = None
) -> StreamHead:
    """As a writer's transaction whose events marker was lost: ``records`` aborted in the events
    partition, their stream's head and a watermark past them committed in the heads partition
    (the last watermark first, as a writer writes it). Returns the head written."""
    producer = Producer(
        {
            "bootstrap.servers": config.bootstrap,
            "transactional.id": f"{config.topic}-divergent",
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    producer.init_transactions(TIMEOUT)
    placed: list[int] = []

    def landed(error: Any, message: Any) -> None:
        assert error is None, error
        placed.append(message.offset())

    producer.begin_transaction()
    for record in records:
        producer.produce(
            config.topic,
            partition=0,
            key=record.stream_id.encode(),
            value=encode_record(record),
            headers=[("type", record.type.encode())],
            on_delivery=landed,
        )
    assert producer.flush(TIMEOUT) == 0
    producer.abort_transaction(TIMEOUT)

    previous = decode_watermark(_heads(config.bootstrap, config.topic)[WATERMARK_KEY])
    assert previous is not None
    if state is None:
        head = StreamHead(records[-1].version, max(placed), replay_from=first)
    else:
        head = StreamHead(records[-1].version, max(placed), 1, msgspec.Raw(state))
    producer.begin_transaction()
    for key, value in [
        (WATERMARK_KEY, encode_watermark(previous)),
        (records[0].stream_id.encode(), encode_head(head)),
        (WATERMARK_KEY, encode_watermark(Watermark(max(placed) + 1))),
    ]:
        producer.produce(config.heads_topic, partition=0, key=key, value=value)
    assert producer.flush(TIMEOUT) == 0
    producer.commit_transaction(TIMEOUT)
    return head


async def _owner_wrote(config: KafkaConfig, *, states: bool) -> KafkaEventStore:
    """An owner that wrote STREAM's versions 1 and 2 and OTHER's 1, then stopped (with
    ``states``, each append carries the stream's state, which its head holds)."""
    owner = KafkaEventStore(config)
    await owner.start()
    try:
        for name, version in [(STREAM, 1), (OTHER, 1), (STREAM, 2)]:
            state = Snapshot(name, version, 1, msgspec.Raw(b'{"v":%d}' % version))
            head = state if states else None
            await owner.enqueue(name, version - 1, [event_record(name, version)], head=head)
    finally:
        await owner.close()
    return owner


async def test_a_take_over_replaces_heads_whose_events_were_aborted(
    bootstrap: str, tmp_path: Path
) -> None:
    topic = unique_topic("test.kafka-heads-repair")
    config = config_for(bootstrap, tmp_path / "owner", topic, partitions=1)
    stream, other = STREAM, OTHER
    owner = await _owner_wrote(config, states=False)
    offsets = _offsets(bootstrap, topic, stream)
    true = StreamHead(2, offsets[2], replay_from=offsets[1])
    assert _head(bootstrap, topic, stream) == true

    bogus = _diverge(config, [event_record(stream, 3), event_record(stream, 4)], offsets[1])
    assert _offsets(bootstrap, topic, stream) == offsets  # the events are not there
    assert _head(bootstrap, topic, stream) == bogus  # their head is

    # The same node owns the partition again: its index holds every committed event.
    await owner.start()
    await owner.close()
    assert _head(bootstrap, topic, stream) == true
    other_head = _head(bootstrap, topic, other)
    assert other_head is not None
    assert other_head.version == 1

    fresh = KafkaEventStore(config_for(bootstrap, tmp_path / "fresh", topic, partitions=1))
    await fresh.start()  # from the heads
    try:
        assert await fresh.stream_version(stream) == 2
        await appends_checked_at(fresh, stream, 2, 4)
    finally:
        await fresh.close()


async def test_a_fresh_owner_replaces_them_once_it_has_read_the_history(
    bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next owner starts from the heads (an empty index), the heads all with a state, so
    it reads no event below the watermark: it finds the head without its events in the topic,
    and writes it again once it has read the history."""
    topic = unique_topic("test.kafka-heads-repair")
    config = config_for(bootstrap, tmp_path / "owner", topic, partitions=1)
    stream = STREAM
    await _owner_wrote(config, states=True)
    offsets = _offsets(bootstrap, topic, stream)
    records = [event_record(stream, 3), event_record(stream, 4)]
    _diverge(config, records, offsets[1], state=b'{"v":4}')

    monkeypatch.setattr(store_module, "START_BOUND", 0.5)  # the history is read after it
    monkeypatch.setattr(take_overs_module, "_TAKE_OVER_RETRY", 0.1)
    fresh = KafkaEventStore(config_for(bootstrap, tmp_path / "fresh", topic, partitions=1))
    await fresh.start()
    try:
        deadline = asyncio.get_running_loop().time() + TIMEOUT  # against a hang only
        while fresh.writer.takeovers == 0:
            assert asyncio.get_running_loop().time() < deadline, "no take-over"
            await asyncio.sleep(0.05)
        head = _head(bootstrap, topic, stream)
        assert head is not None
        assert (head.version, head.offset) == (2, offsets[2])
        assert await fresh.history_pending() == {}
        assert await fresh.stream_version(stream) == 2
        await appends_checked_at(fresh, stream, 2, 4)
    finally:
        await fresh.close()
