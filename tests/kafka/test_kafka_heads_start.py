"""A fresh node (empty data directory) starts from the stream-heads topic against the real
broker: it indexes only the events after the heads' watermark, knows every stream's version
and state at once, reads the history below in the background, and makes the reads that need
that history wait for it. Without a heads topic it reads the whole topic, as before."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer

from core.errors import ConcurrencyError, StoreUnavailableError
from core.records import EventMetadata, EventRecord, Snapshot, encode_record
from plugins.kafka import backfill
from plugins.kafka.backfill import HistoryBackfill
from plugins.kafka.config import KafkaConfig
from plugins.kafka.partitioner import partition_for
from plugins.kafka.store import KafkaEventStore
from plugins.kafka.topic import KafkaTopic
from tests.kafka.helpers import unique_topic
from tests.kafka.test_kafka_store import config_for
from tests.support import RECORDS_T0, event_record

pytestmark = pytest.mark.kafka

PARTITIONS = 3
STREAMS = 12
HISTORY = 25  # events per stream written with heads
TAIL = 3  # events per tail stream written after the last watermark
TAIL_STREAMS = 4


def stream_records(stream_id: str, first: int, count: int) -> list[EventRecord]:
    return [
        event_record(stream_id, v, metadata=EventMetadata(command_id=f"{stream_id}-c{v}"))
        for v in range(first, first + count)
    ]


def streams() -> list[str]:
    return [f"account-{n}" for n in range(STREAMS)]


STATELESS = frozenset(streams()[8:])  # appended last; with ``stateful=False``, headless


def balance_state(records: Sequence[EventRecord]) -> tuple[int, bytes]:
    """The state a head carries: here, the version it folds to."""
    return 1, json.dumps({"version": records[-1].version}).encode()


async def fill(config: KafkaConfig, *, heads: bool = True, stateful: bool = True) -> None:
    """STREAMS streams of HISTORY events appended through a store of their own, which writes
    their heads (the STATELESS ones last, and without a state unless ``stateful``), then TAIL
    more events on TAIL_STREAMS of them written straight to the topic, after the last
    watermark. Without ``heads``, the history is written straight to the topic too, and no
    heads topic exists."""
    names = streams()
    if heads:
        index = config.index_path
        writer = replace(
            config, owner=True, index_path=index.parent.with_name("writer") / index.name
        )
        store = KafkaEventStore(writer)
        await store.start()
        try:
            for group in (names[:8], names[8:]):
                await asyncio.gather(*(append_history(store, s, stateful) for s in group))
        finally:
            await store.close()
    else:
        await asyncio.to_thread(
            write_events, config, [stream_records(s, 1, HISTORY) for s in names]
        )
    tail = [stream_records(s, HISTORY + 1, TAIL) for s in names[:TAIL_STREAMS]]
    await asyncio.to_thread(write_events, config, tail)


async def append_history(store: KafkaEventStore, stream_id: str, stateful: bool) -> None:
    """HISTORY events in one append, with the state they lead to as the stream's head (as the
    repository passes it), or none for a STATELESS stream when not ``stateful``."""
    records = stream_records(stream_id, 1, HISTORY)
    state = None if not stateful and stream_id in STATELESS else balance_state(records)
    head = None if state is None else Snapshot(stream_id, HISTORY, state[0], msgspec.Raw(state[1]))
    await store.enqueue(stream_id, 0, records, head=head)


def write_events(config: KafkaConfig, streams_records: Sequence[Sequence[EventRecord]]) -> None:
    """Events in one transaction, straight to the topic and without heads: what no writer
    writes now (a topic written before its heads topic, or a commit whose heads were lost)."""
    KafkaTopic(config).open()  # the events topic, created if missing
    producer = Producer(
        {
            "bootstrap.servers": config.bootstrap,
            "transactional.id": f"{config.topic}-direct",
            "enable.idempotence": True,
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for records in streams_records:
        for record in records:
            producer.produce(
                config.topic,
                partition=partition_for(record.stream_id, PARTITIONS),
                key=record.stream_id.encode(),
                value=encode_record(record),
                headers=[("type", record.type.encode())],
            )
    producer.commit_transaction(30)


async def history_read(store: KafkaEventStore, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while await store.history_pending():
        assert time.monotonic() < deadline, "the history was not read in time"
        await asyncio.sleep(0.1)


@pytest.fixture
def config(bootstrap: str, tmp_path: Path) -> KafkaConfig:
    """A fresh node's: an empty data directory, a topic of its own."""
    topic = unique_topic("test.kafka-heads")
    return config_for(bootstrap, tmp_path / "fresh", topic, partitions=PARTITIONS)


async def test_a_fresh_node_reads_only_the_tail_after_the_watermark(
    config: KafkaConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(config)
    # No history read in the background: what the start indexed is what it read.
    monkeypatch.setattr(HistoryBackfill, "start", lambda self: None)
    store = KafkaEventStore(config)
    await store.start()
    try:
        assert store.writer.caught_up == TAIL_STREAMS * TAIL  # not the 300 events below W
        names = streams()
        for n, stream in enumerate(names):
            expected = HISTORY + (TAIL if n < TAIL_STREAMS else 0)
            assert await store.stream_version(stream) == expected
        snapshot = await store.load_snapshot(names[-1])
        assert snapshot is not None
        assert (snapshot.version, json.loads(bytes(snapshot.state))) == (HISTORY, {"version": 25})
        # The head alone answers these: no history needed.
        assert [r.version for r in await store.read(names[0], HISTORY)] == [26, 27, 28]
        assert await store.read(names[-1], HISTORY) == []

        # The version check knows the heads: a stale expected version is refused.
        with pytest.raises(ConcurrencyError):
            await store.append(names[-1], 10, stream_records(names[-1], 11, 1))
        appended = await store.append(names[-1], HISTORY, stream_records(names[-1], 26, 1))
        assert appended[0].version == HISTORY + 1

        # The history is not there, and is not coming: the reads that need it give up.
        monkeypatch.setattr(backfill, "HISTORY_WAIT", 0.3)
        with pytest.raises(StoreUnavailableError, match="still being read"):
            await store.read(names[0])
        with pytest.raises(StoreUnavailableError):
            await store.read_command(names[1], f"{names[1]}-c3")
        with pytest.raises(StoreUnavailableError):  # a balance at a past instant
            await store.read(names[1], until=RECORDS_T0 + timedelta(seconds=10))
        assert sorted(await store.history_pending()) == list(range(PARTITIONS))
    finally:
        await store.close()

    # Restarted, it reads the history it still lacks, and loads no head again.
    monkeypatch.undo()
    await store.start()
    try:
        await history_read(store)
        assert store.writer.caught_up == 0
        assert [r.version for r in await store.read(names[1], until=RECORDS_T0)] == []
        at_ten = await store.read(names[1], until=RECORDS_T0 + timedelta(seconds=10))
        assert [r.version for r in at_ten] == list(range(1, 11))
        assert await store.stream_version(names[-1]) == HISTORY + 1
    finally:
        await store.close()


async def test_the_history_is_read_in_the_background_and_then_served(config: KafkaConfig) -> None:
    await fill(config)
    store = KafkaEventStore(config)
    await store.start()
    try:
        assert store.writer.caught_up == TAIL_STREAMS * TAIL
        names = streams()
        # A read of the whole stream waits for the history (or it is there already).
        assert [r.version for r in await store.read(names[0])] == list(range(1, 29))
        await history_read(store)
        assert await store.event_count() == STREAMS * HISTORY + TAIL_STREAMS * TAIL
        for n, stream in enumerate(names):
            expected = HISTORY + (TAIL if n < TAIL_STREAMS else 0)
            assert [r.version for r in await store.read(stream)] == list(range(1, expected + 1))
        found = await store.read_command(names[5], f"{names[5]}-c2")
        assert [r.version for r in found] == [2]
    finally:
        await store.close()

    # A restart neither loads the heads again nor reads the history again.
    await store.start()
    try:
        assert store.writer.caught_up == 0
        assert await store.history_pending() == {}
        assert await store.stream_version(names[0]) == HISTORY + TAIL
    finally:
        await store.close()


async def test_a_node_that_only_reads_starts_from_the_heads_too(
    config: KafkaConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = replace(config, owner=False)
    await fill(config)
    monkeypatch.setattr(HistoryBackfill, "start", lambda self: None)
    store = KafkaEventStore(config)
    await store.start()
    try:
        names = streams()
        deadline = time.monotonic() + 30
        while await store.stream_version(names[0]) < HISTORY + TAIL:  # the tailer's pace
            assert time.monotonic() < deadline, "the tailer did not index the tail"
            await asyncio.sleep(0.1)
        assert store.writer.caught_up == TAIL_STREAMS * TAIL
        assert await store.stream_version(names[-1]) == HISTORY
        assert sorted(await store.history_pending()) == list(range(PARTITIONS))
    finally:
        await store.close()


async def test_heads_without_state_are_read_from_their_first_event(
    config: KafkaConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(config, stateful=False)
    monkeypatch.setattr(HistoryBackfill, "start", lambda self: None)
    monkeypatch.setattr(backfill, "HISTORY_WAIT", 0.3)
    store = KafkaEventStore(config)
    await store.start()
    try:
        # Each partition is read from its first stateless stream's first event: the stateless
        # streams (appended after the others), then the tail.
        assert store.writer.caught_up == len(STATELESS) * HISTORY + TAIL_STREAMS * TAIL
        stateless = sorted(STATELESS)[0]
        assert await store.load_snapshot(stateless) is None
        # Every event of a stateless stream is indexed: its whole read needs no history.
        assert [r.version for r in await store.read(stateless)] == list(range(1, HISTORY + 1))
        with pytest.raises(StoreUnavailableError):
            await store.read(streams()[5])
    finally:
        await store.close()


async def test_without_a_heads_topic_a_fresh_node_reads_the_whole_topic(
    config: KafkaConfig,
) -> None:
    await fill(config, heads=False)
    store = KafkaEventStore(config)
    await store.start()
    try:
        assert store.writer.caught_up == STREAMS * HISTORY + TAIL_STREAMS * TAIL
        assert await store.history_pending() == {}
        assert [r.version for r in await store.read(streams()[0])] == list(range(1, 29))
        assert await store.stream_version(streams()[-1]) == HISTORY
    finally:
        await store.close()
