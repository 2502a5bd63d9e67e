"""The Kafka event store against the real broker: the stored form on the topic, restarts and
the local index, and an outage of the broker itself."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final
from uuid import uuid4

import msgspec
import pytest
from confluent_kafka import Producer

from core.config import MissingSettingError, Settings
from core.errors import StoreUnavailableError
from core.records import EventMetadata, EventRecord, decode_record
from plugins.kafka import index, producer
from plugins.kafka.config import INDEX_FILE, KafkaConfig
from plugins.kafka.store import KafkaEventStore
from tests.kafka.helpers import broker_script, read_topic, unique_topic
from tests.support import event_record, main_file_rows_after

pytestmark = pytest.mark.kafka

T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def record(stream_id: str, version: int, **metadata: str) -> EventRecord:
    data = b'{"amount":100,"note":"caf\xc3\xa9"}'
    at = T0 + timedelta(seconds=version)
    return event_record(stream_id, version, at=at, data=data, metadata=EventMetadata(**metadata))


def records(stream_id: str, count: int, after: int = 0) -> list[EventRecord]:
    return [record(stream_id, after + n) for n in range(1, count + 1)]


def config_for(bootstrap: str, data_dir: Path, topic: str, **options: Any) -> KafkaConfig:
    return KafkaConfig(
        bootstrap=bootstrap,
        index_path=data_dir / INDEX_FILE,
        topic=topic,
        transactional_prefix=f"{topic}-w",
        **options,
    )


def delete_index(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.fixture
def topic() -> str:
    return unique_topic("test.kafka-store")


@pytest.fixture
async def store(bootstrap: str, tmp_path: Path, topic: str) -> AsyncIterator[KafkaEventStore]:
    kafka_store = KafkaEventStore(config_for(bootstrap, tmp_path / "a", topic))
    await kafka_store.start()
    try:
        yield kafka_store
    finally:
        await kafka_store.close()


def test_the_bootstrap_setting_is_required(tmp_path: Path) -> None:
    with pytest.raises(MissingSettingError, match="BALANCE_KAFKA_BOOTSTRAP"):
        KafkaConfig.from_settings(Settings(data_dir=tmp_path))


async def test_a_plain_consumer_reads_the_stored_json_form(
    store: KafkaEventStore, bootstrap: str, topic: str
) -> None:
    stream = f"account-{uuid4().hex}"
    sent = [
        record(stream, 1),
        record(stream, 2, correlation_id="c", causation_id="k", actor="alice", command_id="x"),
    ]
    stored = list(await store.append(stream, 0, sent))

    messages = await asyncio.to_thread(read_topic, bootstrap, topic)

    assert len(messages) == 2
    fields = set(EventRecord.__struct_fields__)
    for message, expected in zip(messages, stored, strict=True):
        assert message.key() == stream.encode()
        assert dict(message.headers() or []) == {"type": b"MoneyDeposited"}
        document = json.loads(message.value())
        assert set(document) == fields  # every field present, readable by any client
        assert document["stream_id"] == stream
        assert document["occurred_at"] == (
            T0 + timedelta(seconds=expected.version)
        ).isoformat().replace("+00:00", "Z")
        decoded = decode_record(message.value())
        assert msgspec.structs.replace(decoded, position=message.offset() + 1) == expected
    assert json.loads(messages[1].value())["metadata"]["actor"] == "alice"
    # One stream, one partition: the positions are its offsets (+1), in order.
    assert len({m.partition() for m in messages}) == 1
    assert [r.position for r in stored] == [m.offset() + 1 for m in messages]


async def test_restart_continues_the_versions_and_catches_up_the_tail(
    bootstrap: str, tmp_path: Path, topic: str
) -> None:
    stream = f"account-{uuid4().hex}"
    first = KafkaEventStore(config_for(bootstrap, tmp_path / "a", topic))
    await first.start()
    await first.append(stream, 0, records(stream, 3))
    await first.close()

    # Another node (its own, cold index) writes while the first is down: same topic, same
    # transactional.id (it fences the first one), so the first one's index misses this tail.
    other = KafkaEventStore(config_for(bootstrap, tmp_path / "b", topic))
    await other.start()
    assert await other.stream_version(stream) == 3
    await other.append(stream, 3, records(stream, 2, after=3))
    await other.close()

    await first.start()
    try:
        assert first.writer.caught_up == 2  # only the tail was read, not the whole history
        assert await first.stream_version(stream) == 5
        assert [r.version for r in await first.read(stream)] == [1, 2, 3, 4, 5]
        appended = await first.append(stream, 5, records(stream, 1, after=5))
        assert appended[0].version == 6
    finally:
        await first.close()


async def test_a_deleted_local_index_is_rebuilt_from_the_topic(
    bootstrap: str, tmp_path: Path, topic: str
) -> None:
    config = config_for(bootstrap, tmp_path / "a", topic)
    streams = [f"account-{uuid4().hex}" for _ in range(5)]
    store = KafkaEventStore(config)
    await store.start()
    for n, stream in enumerate(streams, start=1):
        await store.append(stream, 0, records(stream, n))
    before = {stream: await store.read(stream) for stream in streams}
    await store.close()

    await asyncio.to_thread(delete_index, config.index_path)

    await store.start()
    try:
        assert store.writer.caught_up == sum(range(1, 6))
        for n, stream in enumerate(streams, start=1):
            assert await store.stream_version(stream) == n
            assert await store.read(stream) == before[stream]
        await store.append(streams[0], 1, records(streams[0], 1, after=1))
    finally:
        await store.close()


async def test_the_index_reaches_its_database_file_while_the_store_runs(
    bootstrap: str, tmp_path: Path, topic: str
) -> None:
    # 300 events are far below the 16,384 pages at which SQLite itself would checkpoint the
    # index, so only the store's checkpoint thread can have copied them into the file. With
    # SQLite's default checkpoints, inside the index write, they stayed in the WAL.
    config = config_for(bootstrap, tmp_path / "a", topic)
    store = KafkaEventStore(config)
    await store.start()
    try:
        for _ in range(10):
            stream = f"account-{uuid4().hex}"
            await store.append(stream, 0, records(stream, 30))
        copied = await main_file_rows_after(
            config.index_path, tmp_path / "scratch", "events", 300, seconds=5
        )
        assert copied == 300
    finally:
        await store.close()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("sqlite-checkpoints:")]
    assert alive == []


async def test_an_append_is_answered_before_its_index_write_and_reads_wait_for_it(
    bootstrap: str, tmp_path: Path, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexed_at: list[float] = []
    insert_events = index.insert_events

    def slow_insert(connection: Any, events: Any) -> int:
        events = list(events)
        if events:
            time.sleep(0.5)  # a slow disk, on the writer's thread
        inserted = insert_events(connection, events)
        if events:
            indexed_at.append(time.monotonic())
        return inserted

    monkeypatch.setattr(index, "insert_events", slow_insert)
    store = KafkaEventStore(config_for(bootstrap, tmp_path / "a", topic))
    await store.start()
    try:
        stream = f"account-{uuid4().hex}"
        appended = await store.append(stream, 0, records(stream, 2))
        assert [r.version for r in appended] == [1, 2]
        assert indexed_at == []  # the broker's commit was enough to answer
        # A read that starts after the answer sees the append: it waits for the index.
        assert [r.version for r in await store.read(stream)] == [1, 2]
        assert len(indexed_at) == 1
        assert await store.stream_version(stream) == 2
    finally:
        await store.close()


class RecordedProducer(Producer):
    """A producer that records each of its blocking calls with the timeout it was given
    (None: no timeout, Kafka's own defaults)."""

    calls: ClassVar[list[tuple[str, float | None]]] = []

    def init_transactions(self, *timeout: float) -> None:
        self.calls.append(("init_transactions", timeout[0] if timeout else None))
        super().init_transactions(*timeout)

    def begin_transaction(self) -> None:
        self.calls.append(("begin_transaction", None))
        super().begin_transaction()

    def flush(self, *timeout: float) -> int:
        self.calls.append(("flush", timeout[0] if timeout else None))
        return super().flush(*timeout)

    def commit_transaction(self, *timeout: float) -> None:
        self.calls.append(("commit_transaction", timeout[0] if timeout else None))
        super().commit_transaction(*timeout)

    def abort_transaction(self, *timeout: float) -> None:
        self.calls.append(("abort_transaction", timeout[0] if timeout else None))
        super().abort_transaction(*timeout)


# The ways an attempt at a broker that does not answer ends, each with nothing written.
NOTHING_WRITTEN = (
    "Kafka did not initialise the transactions",
    "Kafka did not take the appends",
    "Kafka refused the appends; none written",
    "Kafka aborted the transaction; none written",
)
HANG: Final = 60.0  # turns a hang into a failure; never a verdict on speed


async def test_an_append_during_a_broker_outage_fails_fast_and_is_never_visible(
    bootstrap: str, tmp_path: Path, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The append is tried once, every blocking Kafka call on its behalf bounded by its own
    ``append_timeout``, and answered with the typed error that says nothing was written."""
    monkeypatch.setattr(producer, "Producer", RecordedProducer)
    monkeypatch.setattr(RecordedProducer, "calls", [])
    append_timeout = 2.0
    store = KafkaEventStore(
        config_for(bootstrap, tmp_path / "a", topic, append_timeout=append_timeout)
    )
    await store.start()
    stream = f"account-{uuid4().hex}"
    await store.append(stream, 0, records(stream, 1))
    lost = records(stream, 2, after=1)
    try:
        await asyncio.to_thread(broker_script, "stop", bootstrap)
        assert not await store.ready()

        RecordedProducer.calls.clear()
        with pytest.raises(StoreUnavailableError) as refused:
            await asyncio.wait_for(store.append(stream, 1, lost), HANG)
        tried = list(RecordedProducer.calls)
        assert str(refused.value).startswith(NOTHING_WRITTEN), refused.value
        attempts = [name for name, _ in tried if name in {"init_transactions", "begin_transaction"}]
        assert len(attempts) == 1, tried
        timeouts = [timeout for name, timeout in tried if name != "begin_transaction"]
        assert timeouts, tried
        assert all(t is not None and 0 < t <= append_timeout for t in timeouts), tried
        assert await store.stream_version(stream) == 1
    finally:
        await asyncio.to_thread(broker_script, "start", bootstrap)

    try:
        # The same store recovers by itself: a new producer, a fresh init_transactions.
        retried = await retry_while_unavailable(
            lambda: store.append(stream, 1, records(stream, 1, after=1)), within=60
        )
        assert [r.version for r in retried] == [2]
        assert await store.ready()
        assert [r.version for r in await store.read(stream)] == [1, 2]
    finally:
        await store.close()

    committed = await asyncio.to_thread(read_topic, bootstrap, topic)
    seen = {decode_record(m.value()).event_id for m in committed}
    assert not seen & {r.event_id for r in lost}
    assert len(committed) == 2


async def retry_while_unavailable(attempt: Callable[[], Any], within: float) -> list[EventRecord]:
    deadline = time.monotonic() + within
    while True:
        try:
            return list(await attempt())
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_the_group_holds_progress_and_a_rebuild_starts_from_the_beginning(
    store: KafkaEventStore,
) -> None:
    streams = [f"account-{uuid4().hex}" for _ in range(4)]  # likely over several partitions
    for stream in streams:
        await store.append(stream, 0, records(stream, 2))
    everything = {(s, v) for s in streams for v in (1, 2)}

    async def drain(
        group: str, expected: set[tuple[str, int]], checkpoint: int = 0
    ) -> set[tuple[str, int]]:
        """What the group gets: polled until ``expected`` has come (partitions may start
        seconds apart on a broker that has just restarted), then a while longer for extras."""
        subscription = store.subscribe(group, checkpoint)
        seen: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 30
        try:
            while not expected <= seen and time.monotonic() < deadline:
                if batch := await subscription.next_batch(timeout=1.0):
                    seen |= {(e.stream_id, e.version) for e in batch.events}
                    await subscription.commit(batch)
            while batch := await subscription.next_batch(timeout=1.0):
                seen |= {(e.stream_id, e.version) for e in batch.events}
                await subscription.commit(batch)
        finally:
            await subscription.close()
        return seen

    group = f"accounts-{uuid4().hex}"
    assert await drain(group, everything) == everything
    later = await store.append(streams[0], 2, records(streams[0], 1, after=2))
    # Committed offsets win over any checkpoint given: only the new event comes.
    assert await drain(group, {(streams[0], 3)}, checkpoint=0) == {(streams[0], 3)}
    assert later[0].position > 0

    rebuild = f"accounts-{uuid4().hex}-rebuild"
    whole = everything | {(streams[0], 3)}
    assert await drain(rebuild, whole) == whole
    assert await drain(rebuild, whole) == whole  # committed, yet from zero
