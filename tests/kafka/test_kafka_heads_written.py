"""The stream-heads topic as the writers leave it, on the real broker: appends through the
``Repository`` → a ``read_committed`` reader of ``<topic>.heads`` finds each stream's latest
version, the offset of its last event and its state, and each partition's watermark just past
its last event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.records import EventRecord, decode_record
from core.repository import Repository
from plugins.kafka.config import INDEX_FILE, KafkaConfig
from plugins.kafka.heads import WATERMARK_KEY, decode_head, decode_watermark
from plugins.kafka.partitioner import partition_for
from plugins.kafka.store import KafkaEventStore
from tests.kafka.helpers import read_topic, unique_topic
from tests.support import event_record

pytestmark = pytest.mark.kafka

PARTITIONS = 3


class Tally(msgspec.Struct, frozen=True):
    stream_id: str
    version: int = 0
    events: tuple[str, ...] = ()


class TallyKind:
    """A stream's state: its version and the ids of its events."""

    snapshot_schema = 3

    def initial(self, stream_id: str) -> Tally:
        return Tally(stream_id)

    def evolve(self, state: Tally, record: EventRecord) -> Tally:
        return Tally(state.stream_id, record.version, (*state.events, record.event_id))

    def version(self, state: Tally) -> int:
        return state.version

    def encode_snapshot(self, state: Tally) -> bytes:
        return msgspec.json.encode(state)

    def decode_snapshot(self, data: bytes) -> Tally:
        return msgspec.json.decode(data, type=Tally)


def _config(bootstrap: str, data_dir: Path, topic: str) -> KafkaConfig:
    return KafkaConfig(
        bootstrap=bootstrap,
        index_path=data_dir / INDEX_FILE,
        topic=topic,
        partitions=PARTITIONS,
        transactional_prefix=f"{topic}-w",
    )


@pytest.fixture
def topic() -> str:
    return unique_topic("test.kafka-heads")


@pytest.fixture
async def store(bootstrap: str, tmp_path: Path, topic: str) -> AsyncIterator[KafkaEventStore]:
    kafka_store = KafkaEventStore(_config(bootstrap, tmp_path / "a", topic))
    await kafka_store.start()
    try:
        yield kafka_store
    finally:
        await kafka_store.close()


def _compacted(messages: list[Any]) -> dict[int, dict[bytes, bytes | None]]:
    """Each partition's last value per key, as compaction leaves it."""
    latest: dict[int, dict[bytes, bytes | None]] = {}
    for message in messages:
        latest.setdefault(message.partition(), {})[message.key()] = message.value()
    return latest


async def test_the_heads_topic_holds_each_streams_latest_state_and_a_watermark(
    store: KafkaEventStore, bootstrap: str, topic: str
) -> None:
    kind = TallyKind()
    repository = Repository(store, kind, store)
    streams = [f"tally-{n}" for n in range(12)]
    states = {}
    for round_ in range(3):
        for stream in streams[: 4 + 4 * round_]:  # streams of 1, 2 and 3 events
            state = await repository.load(stream)
            records = [event_record(stream, state.version + 1)]
            states[stream] = await repository.save(stream, state, records)
    assert {s.version for s in states.values()} == {1, 2, 3}

    events = read_topic(bootstrap, topic)
    last_event: dict[str, tuple[int, int]] = {}  # stream → (version, offset)
    last_offset: dict[int, int] = {}
    for message in events:
        record = decode_record(message.value())
        last_event[record.stream_id] = (record.version, message.offset())
        last_offset[message.partition()] = max(
            last_offset.get(message.partition(), -1), message.offset()
        )
    heads = _compacted(read_topic(bootstrap, f"{topic}.heads"))

    assert set(heads) == set(last_offset)
    for stream, state in states.items():
        head = decode_head(heads[partition_for(stream, PARTITIONS)][stream.encode()])
        assert head is not None
        assert (head.version, head.offset) == last_event[stream]
        assert head.schema == kind.snapshot_schema
        assert head.state is not None
        assert kind.decode_snapshot(bytes(head.state)) == state
    for partition, offset in last_offset.items():
        watermark = decode_watermark(heads[partition][WATERMARK_KEY])
        assert watermark is not None
        assert watermark.next_offset == offset + 1  # just past the partition's last event


async def test_a_take_over_that_finds_the_heads_whole_writes_none(
    store: KafkaEventStore, bootstrap: str, topic: str, tmp_path: Path
) -> None:
    for n in range(6):
        await store.append(f"s-{n}", 0, [event_record(f"s-{n}", 1)])
    await store.close()
    written = len(read_topic(bootstrap, f"{topic}.heads", "read_uncommitted"))

    again = KafkaEventStore(_config(bootstrap, tmp_path / "b", topic))  # a fresh index
    await again.start()
    await again.close()
    assert len(read_topic(bootstrap, f"{topic}.heads", "read_uncommitted")) == written
