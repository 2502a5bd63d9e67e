"""The Kafka writer thread against a fake broker: no exception ends the thread, every queued
append is answered, and a producer in trouble is replaced (``init_transactions`` again, the
topic's tail re-read) before the next version check.

The fake stands in for confluent-kafka's ``Producer``, ``Consumer`` and ``AdminClient`` the way
librdkafka behaves: delivery reports and the error callback run inside ``flush``, and an
exception raised by a callback comes out of ``flush``. Its one partition is assigned to the store
by the owners' group at the first poll; the partition of the same number in the stream-heads
topic shares its transactions (markers); records for another topic (the owner directory) are
acknowledged and kept apart."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from core.errors import ConcurrencyError, StoreUnavailableError, StreamMovingError
from core.eventsourcing.links import Link
from core.placement import HERE, Moving
from core.records import EventRecord, decode_record
from plugins.kafka import index
from plugins.kafka import local_index as local_index_module
from plugins.kafka import producer as producer_module
from plugins.kafka import topic as topic_module
from plugins.kafka import writer as writer_module
from plugins.kafka.config import INDEX_FILE, KafkaConfig
from plugins.kafka.delivery import Delivery
from plugins.kafka.store import KafkaEventStore
from tests.support import event_record

TOPIC = "fake.balance.events"
HEADS = f"{TOPIC}.heads"
ANSWER_BOUND = 30.0  # an upper bound against hangs only
Fault = Callable[["FakeProducer"], None]


class FakeMessage:
    def __init__(
        self,
        value: bytes,
        offset: int,
        error: KafkaError | None = None,
        partition: int = 0,
        key: bytes | None = None,
    ) -> None:
        self._value, self._offset, self._error, self._partition = value, offset, error, partition
        self._key = key

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return TOPIC


class BrokenMessage(FakeMessage):
    """A delivery report whose message cannot even say where it landed."""

    def partition(self) -> int:
        raise RuntimeError("no partition")


@dataclass
class Entry:
    value: bytes | None
    state: str = "open"  # then "committed" or "aborted", by a marker
    key: bytes | None = None


@dataclass
class FakeBroker:
    """One partition, and the faults the next calls meet.

    As in Kafka, a transaction's records are in the log (open) from the flush on, and a marker
    ends every open record of the partition (one producer id writes it). Read-committed
    readers stop at the first open record (the last stable offset)."""

    log: list[Entry] = field(default_factory=list)
    heads: list[Entry] = field(default_factory=list)  # the heads topic's partition
    ongoing: bool = False  # the coordinator's view of our transaction
    lose_markers: bool = False  # the next end of a transaction writes no marker
    lose_heads_marker: bool = False  # the next end writes no marker in the heads partition
    lose_events_marker: bool = False  # the next end writes no marker in the events partition
    producers: int = 0
    initialised: int = 0
    catch_ups: int = 0  # times the local index caught up with the topic before serving
    elsewhere: list[bytes | None] = field(default_factory=list)  # records for other topics
    assignments: int = 1  # times the owners' group has assigned the partition to the store
    faults: dict[str, list[Fault]] = field(default_factory=dict)

    def arm(self, call: str, *faults: Fault) -> None:
        self.faults.setdefault(call, []).extend(faults)

    def fault(self, call: str, producer: FakeProducer) -> None:
        pending = self.faults.get(call)
        if pending:
            pending.pop(0)(producer)

    @property
    def stable(self) -> int:
        return _stable(self.log)

    def end(self, state: str) -> None:
        """The coordinator completes our transaction, and writes its markers (unless lost) if
        the transaction wrote into the partitions."""
        touched, self.ongoing = self.ongoing, False
        if self.lose_markers:
            self.lose_markers = False
            return
        logs = [self.log] if self.lose_heads_marker else [self.log, self.heads]
        logs = [self.heads] if self.lose_events_marker else logs
        self.lose_heads_marker = self.lose_events_marker = False
        for entry in (e for log in logs for e in log) if touched else []:
            if entry.state == "open":
                entry.state = state

    def logged(self, topic: str) -> list[Entry]:
        return self.heads if topic == HEADS else self.log

    def committed_heads(self) -> dict[bytes, bytes | None]:
        """The heads partition as a compacted read_committed reader ends up with it."""
        return {e.key: e.value for e in self.heads if e.state == "committed" and e.key}

    def committed(self) -> list[EventRecord]:
        return [decode_record(e.value) for e in self.log if e.state == "committed" and e.value]


def _stable(log: list[Entry]) -> int:
    return next((n for n, e in enumerate(log) if e.state == "open"), len(log))


class FakeProducer:
    def __init__(self, broker: FakeBroker, config: dict[str, Any]) -> None:
        self.broker = broker
        self.error_cb = config.get("error_cb")
        self.pending: list[tuple[bytes | None, Any, str, bytes | None]] = []
        self.fatal: KafkaError | None = None  # then every transactional call raises it
        broker.producers += 1

    def _call(self, name: str) -> None:
        if self.fatal is not None:
            raise KafkaException(self.fatal)
        self.broker.fault(name, self)

    def init_transactions(self, timeout: float) -> None:
        self._call("init")
        if self.broker.ongoing:  # fences the older producer, aborts what it left open
            self.broker.end("aborted")
        self.broker.initialised += 1

    def begin_transaction(self) -> None:
        self._call("begin")
        self.pending = []

    def produce(self, topic: str, value: bytes | None = None, **options: Any) -> None:
        if topic not in (TOPIC, HEADS):
            self.broker.elsewhere.append(value)
            options["on_delivery"](None, FakeMessage(value or b"", len(self.broker.elsewhere)))
            return
        self.pending.append((value, options["on_delivery"], topic, options.get("key")))

    def flush(self, timeout: float) -> int:
        self.broker.fault("flush", self)
        for value, report, topic, key in self.pending:
            self.broker.ongoing = True
            log = self.broker.logged(topic)
            log.append(Entry(value, key=key))
            report(None, FakeMessage(value or b"", len(log) - 1))
        self.pending = []
        return 0

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit")
        self.broker.end("committed")

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort")
        self.broker.end("aborted")

    def purge(self, **flags: bool) -> None:
        self.pending = []

    def poll(self, timeout: float) -> int:
        return 0


class FakeConsumer:
    """A read_committed reader: up to the last stable offset, aborted records left out, and
    the end of the partition reported only where it is stable. Or a read_uncommitted one."""

    def __init__(self, broker: FakeBroker, config: dict[str, Any]) -> None:
        self.broker = broker
        self.topic = TOPIC
        self.position = 0
        self.at_end = False
        self.committed = config["isolation.level"] == "read_committed"
        self.assigned = False
        self.on_assign: Callable[[Any, list[TopicPartition]], None] | None = None
        self.given = 0  # assignments this member has been told of

    def assign(self, partitions: list[TopicPartition]) -> None:
        for partition in partitions:
            if partition.topic in (TOPIC, HEADS):
                self.assigned, self.topic = True, partition.topic
                self.position = 0 if partition.offset == OFFSET_BEGINNING else partition.offset

    incremental_assign = assign

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = self.assigned and all(p.topic != TOPIC for p in partitions)

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.on_assign = callbacks["on_assign"]

    def poll(self, timeout: float) -> None:
        """The owners' group: the one partition is this member's at the first poll, and again
        whenever the broker's ``assignments`` grows."""
        if self.on_assign is not None and self.given < self.broker.assignments:
            self.given += 1
            self.on_assign(self, [TopicPartition(TOPIC, 0)])
        else:
            time.sleep(timeout)

    def pause(self, partitions: list[TopicPartition]) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        if self.at_end or not self.assigned:
            time.sleep(timeout)
            return []
        log = self.broker.logged(self.topic)
        stable = _stable(log) if self.committed else len(log)
        messages = [
            FakeMessage(log[n].value or b"", n, key=log[n].key)
            for n in range(self.position, stable)
            if log[n].state == "committed" or not self.committed
        ]
        self.position = max(self.position, stable)
        if stable < len(log):
            return messages
        self.at_end = True
        return [*messages, FakeMessage(b"", len(log), KafkaError(KafkaError._PARTITION_EOF))]

    def close(self) -> None:
        pass


class FakeAdmin:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Future[Any]]:
        return {topic.topic: _done(None) for topic in topics}

    def describe_topics(self, topics: Any, request_timeout: float) -> dict[str, Future[Any]]:
        return {
            name: _done(SimpleNamespace(partitions=[0], topic_id=f"fake-id-{name}"))
            for name in topics.topic_names
        }

    def list_topics(self, topic: str, timeout: float) -> Any:
        return SimpleNamespace(topics={TOPIC: None})

    def list_offsets(
        self, wanted: dict[TopicPartition, Any], isolation_level: IsolationLevel, **options: Any
    ) -> dict[TopicPartition, Future[Any]]:
        committed = isolation_level == IsolationLevel.READ_COMMITTED
        logs = {tp: self.broker.logged(tp.topic) for tp in wanted}
        return {
            tp: _done(SimpleNamespace(offset=_stable(log) if committed else len(log)))
            for tp, log in logs.items()
        }


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    fake = FakeBroker()
    monkeypatch.setattr(producer_module, "Producer", lambda config: FakeProducer(fake, config))
    monkeypatch.setattr(topic_module, "Consumer", lambda config: FakeConsumer(fake, config))
    monkeypatch.setattr(topic_module, "AdminClient", lambda config: FakeAdmin(fake))
    # Counted where the index catches up, not by read_committed consumers: the store's
    # background readers (the tailer, the history) create theirs at moments of their own.
    catch_up = local_index_module.catch_up

    def counted_catch_up(*args: Any, **kwargs: Any) -> Any:
        fake.catch_ups += 1
        return catch_up(*args, **kwargs)

    monkeypatch.setattr(local_index_module, "catch_up", counted_catch_up)
    return fake


@pytest.fixture
async def store(broker: FakeBroker, tmp_path: Path) -> AsyncIterator[KafkaEventStore]:
    config = KafkaConfig(
        bootstrap="fake:9092", index_path=tmp_path / INDEX_FILE, topic=TOPIC, partitions=1
    )
    kafka_store = KafkaEventStore(config)
    await kafka_store.start()
    try:
        yield kafka_store
    finally:
        await kafka_store.close()


def _stream() -> str:
    return f"account-{uuid4().hex}"


@pytest.fixture
async def stream(store: KafkaEventStore) -> str:
    """A stream whose first event is committed, before any fault is armed."""
    name = _stream()
    await _append(store, name, 1)
    return name


async def _append(store: KafkaEventStore, stream: str, version: int) -> list[EventRecord]:
    appended = store.append(stream, version - 1, [event_record(stream, version)])
    return list(await asyncio.wait_for(appended, ANSWER_BOUND))


def _raise(error: BaseException) -> Fault:
    def fault(producer: FakeProducer) -> None:
        raise error

    return fault


FENCED = KafkaError(KafkaError._FENCED, "producer fenced", fatal=True)
FATAL = KafkaError(KafkaError._FATAL, "a fatal error", fatal=True)


def _fatal_in_flush(error: KafkaError) -> Fault:
    """As confluent-kafka reports a fatal error that ``flush`` meets: it sets the fatal
    KafkaException instead of calling the error callback, and the next delivery report runs
    with that exception pending, which comes out as a SystemError. From then on every
    transactional call raises the fatal error."""

    def fault(producer: FakeProducer) -> None:
        producer.fatal = error
        producer.pending = []
        raise SystemError(
            "<function Delivery.__call__> returned a result with an exception set"
        ) from KafkaException(error)

    return fault


_fenced = _fatal_in_flush(FENCED)


def _fenced_report(producer: FakeProducer) -> None:
    """A newer writer fenced this one while its records were on their way: each record's
    delivery report carries the fencing, ``flush`` returns, and the abort then fails fatally."""
    producer.fatal = FENCED
    for value, report, _, _ in producer.pending:
        report(FENCED, FakeMessage(value or b"", -1, FENCED))
    producer.pending = []


_fatal = _fatal_in_flush(FATAL)


def _broken_report(producer: FakeProducer) -> None:
    for value, report, topic, key in producer.pending:
        producer.broker.ongoing = True
        producer.broker.logged(topic).append(Entry(value, key=key))
        report(None, BrokenMessage(value or b"", 0))
    producer.pending = []


def _lands_then_times_out(producer: FakeProducer) -> None:
    producer.broker.end("committed")
    raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit timed out"))


def _markers_lost(*, heard: bool = True, then: Fault | None = None) -> Fault:
    """The broker restarts as the transaction ends: the coordinator completes it, but skips the
    partition's marker (it does not know the partition's leader yet). With ``heard``, the
    producer hears that every broker went down; ``then`` is what the call meets next."""

    def fault(producer: FakeProducer) -> None:
        producer.broker.lose_markers = True
        if heard and producer.error_cb is not None:
            producer.error_cb(KafkaError(KafkaError._ALL_BROKERS_DOWN))
        if then is not None:
            then(producer)

    return fault


def _fails_once(monkeypatch: pytest.MonkeyPatch, name: str, error: Exception) -> None:
    """The index function ``name`` raises ``error`` on its next call, then works again."""
    original = getattr(index, name)
    calls = 0

    def fails_once(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise error
        return original(*args)

    monkeypatch.setattr(index, name, fails_once)


def test_the_delivery_report_callback_never_raises() -> None:
    delivery = Delivery()
    delivery(None, BrokenMessage(b"", 0))
    assert delivery.done
    assert not delivery.placed
    assert isinstance(delivery.error, RuntimeError)

    fenced = Delivery()
    fenced(FENCED, FakeMessage(b"", -1, FENCED))
    assert fenced.done
    assert not fenced.placed
    assert fenced.error is FENCED

    landed = Delivery()
    landed(None, FakeMessage(b"", 41))
    assert landed.placed
    assert (landed.partition, landed.offset) == (0, 41)


@pytest.mark.parametrize(
    ("call", "fault", "rebuilt"),
    [
        pytest.param(
            "flush",
            _raise(SystemError("Delivery.__call__ returned a result with an exception set")),
            True,
            id="SystemError-out-of-flush",
        ),
        pytest.param(
            "flush", _raise(ValueError("raised by a callback")), True, id="callback-raised"
        ),
        pytest.param("flush", _broken_report, False, id="broken-delivery-report"),
        pytest.param("flush", _fatal, True, id="fatal-in-flush"),
        pytest.param("flush", _raise(KafkaException(FATAL)), True, id="fatal-out-of-flush"),
        pytest.param("begin", _raise(KafkaException(FATAL)), True, id="fatal-at-begin"),
        pytest.param("begin", _raise(RuntimeError("anything")), True, id="arbitrary-at-begin"),
        pytest.param("commit", _raise(KafkaException(FATAL)), True, id="fatal-at-commit"),
        pytest.param("commit", _raise(MemoryError()), True, id="arbitrary-at-commit"),
    ],
)
async def test_a_failed_transaction_is_refused_and_the_writer_serves_the_next_append(
    store: KafkaEventStore, stream: str, broker: FakeBroker, call: str, fault: Fault, rebuilt: bool
) -> None:
    producers, catch_ups = broker.producers, broker.catch_ups
    broker.arm(call, fault)

    with pytest.raises(StoreUnavailableError):
        await _append(store, stream, 2)
    assert store.writer.alive
    assert await store.ready()

    # Served again by the same writer; the refused append was never committed.
    assert [r.version for r in await _append(store, stream, 2)] == [2]
    assert [r.version for r in await store.read(stream)] == [1, 2]
    assert [r.version for r in broker.committed()] == [1, 2]
    # A producer in a fatal or unknown state is replaced, and the new one initialised and the
    # topic's tail re-read before it serves; after a clean abort the producer stays.
    assert broker.producers == producers + rebuilt
    assert broker.initialised == broker.producers
    assert broker.catch_ups == catch_ups + rebuilt


@pytest.mark.parametrize(
    ("call", "fault"),
    [
        pytest.param("flush", _fenced, id="fenced-in-flush"),
        pytest.param("flush", _fenced_report, id="fenced-in-a-delivery-report"),
        pytest.param("flush", _raise(KafkaException(FENCED)), id="fenced-out-of-flush"),
        pytest.param("begin", _raise(KafkaException(FENCED)), id="fenced-at-begin"),
        pytest.param("commit", _raise(KafkaException(FENCED)), id="fenced-at-commit"),
    ],
)
async def test_a_fenced_writer_stops_until_the_group_assigns_the_partition_again(
    store: KafkaEventStore, stream: str, broker: FakeBroker, call: str, fault: Fault
) -> None:
    producers = broker.producers
    broker.arm(call, fault)

    with pytest.raises(StoreUnavailableError):
        await _append(store, stream, 2)
    # Another instance owns the partition now: nothing is written here, and no producer is
    # started for it (that would fence the new owner in turn).
    await _until(lambda: isinstance(store.placement.place(stream), Moving))
    with pytest.raises(StreamMovingError):
        await _append(store, stream, 2)
    await asyncio.sleep(0)
    assert broker.producers == producers
    assert [r.version for r in broker.committed()] == [1]

    broker.assignments += 1  # the group gives the partition back to this instance
    await _until(lambda: store.placement.place(stream) == HERE)
    assert [r.version for r in await _append(store, stream, 2)] == [2]
    assert broker.producers == producers + 1
    assert broker.initialised == broker.producers
    assert [r.version for r in broker.committed()] == [1, 2]


async def test_a_partition_fenced_while_the_group_still_assigns_it_here_is_taken_back(
    store: KafkaEventStore, stream: str, broker: FakeBroker
) -> None:
    """Something fenced the writer (a zombie's new producer, say) but neither the group nor
    the owners' records moved the partition: after ``retake_after`` it is taken over again
    here, rather than left without an owner until the next rebalance."""
    store.writer.retake_after = 0.05
    producers = broker.producers
    broker.arm("commit", _raise(KafkaException(FENCED)))

    with pytest.raises(StoreUnavailableError):
        await _append(store, stream, 2)
    await _until(lambda: store.placement.place(stream) == HERE)
    assert [r.version for r in await _append(store, stream, 2)] == [2]
    assert broker.producers == producers + 1
    assert broker.initialised == broker.producers
    assert store.writer.takeovers == 2
    assert [r.version for r in broker.committed()] == [1, 2]


async def _until(condition: Callable[[], bool]) -> None:
    """Polls ``condition`` until it holds (the bound only guards against a hang)."""
    async with asyncio.timeout(ANSWER_BOUND):
        while not condition():  # noqa: ASYNC110 (a state of other threads: no event to await)
            await asyncio.sleep(0.01)


async def test_an_unknown_commit_that_landed_is_re_read_before_the_next_version_check(
    store: KafkaEventStore, stream: str, broker: FakeBroker
) -> None:
    broker.arm("commit", _lands_then_times_out)

    with pytest.raises(StoreUnavailableError, match="may or may not be stored"):
        await _append(store, stream, 2)
    landed = broker.committed()[-1]

    # A retry decided from the old version conflicts (nothing written twice), and the index
    # holds what really landed, so the retry's reload finds it.
    with pytest.raises(ConcurrencyError):
        await _append(store, stream, 2)
    assert [r.event_id for r in await store.read(stream, after_version=1)] == [landed.event_id]
    assert await store.stream_version(stream) == 2
    assert len(broker.committed()) == 2
    assert [r.version for r in await _append(store, stream, 3)] == [3]


async def test_a_read_after_an_unknown_commit_shows_whether_it_landed(
    store: KafkaEventStore, stream: str, broker: FakeBroker
) -> None:
    """A caller told "may or may not be stored" reads the stream at once (a retry reloading
    its account, say): the read waits for the writer to settle the commit, so it decides on
    what landed, not on the index as it was before the commit."""
    broker.arm("commit", _lands_then_times_out)
    with pytest.raises(StoreUnavailableError, match="may or may not be stored"):
        await _append(store, stream, 2)
    landed = broker.committed()[-1]

    assert [r.event_id for r in await store.read(stream, after_version=1)] == [landed.event_id]
    assert await store.stream_version(stream) == 2


def _times_out(producer: FakeProducer) -> None:
    raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "commit timed out"))


@pytest.mark.parametrize("landed", [True, False], ids=["landed", "lost"])
async def test_an_append_chained_to_an_unconfirmed_commit_is_written_if_that_commit_landed(
    store: KafkaEventStore, stream: str, broker: FakeBroker, landed: bool
) -> None:
    """An append queued on top of one whose commit Kafka did not confirm, while that commit is
    under way: the catch-up before its version check finds whether the commit landed. If it
    did, the append was decided from what is stored and is written; if not, it is refused."""
    loop = asyncio.get_running_loop()
    first = Link()
    behind: list[asyncio.Future[list[EventRecord]]] = []
    queued = threading.Event()

    def queue_behind() -> None:
        behind.append(store.enqueue(stream, 2, [event_record(stream, 3)], Link(first)))
        queued.set()

    def commit_with_one_queued_behind(producer: FakeProducer) -> None:
        loop.call_soon_threadsafe(queue_behind)
        queued.wait(ANSWER_BOUND)
        (_lands_then_times_out if landed else _times_out)(producer)

    broker.arm("commit", commit_with_one_queued_behind)
    unconfirmed = store.enqueue(stream, 1, [event_record(stream, 2)], first)
    with pytest.raises(StoreUnavailableError, match="may or may not be stored"):
        await asyncio.wait_for(unconfirmed, ANSWER_BOUND)
    (chained,) = behind
    if landed:
        assert [r.version for r in await asyncio.wait_for(chained, ANSWER_BOUND)] == [3]
        assert [r.version for r in broker.committed()] == [1, 2, 3]
    else:
        with pytest.raises(ConcurrencyError):
            await asyncio.wait_for(chained, ANSWER_BOUND)
        assert [r.version for r in broker.committed()] == [1]
    assert first.failed is not landed


async def test_an_exception_outside_the_transaction_refuses_only_its_batch(
    store: KafkaEventStore, stream: str, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fails_once(monkeypatch, "find_event_ids", RuntimeError("a bug in the version check"))
    with pytest.raises(StoreUnavailableError, match="a bug in the version check"):
        await _append(store, stream, 2)
    assert store.writer.alive
    assert [r.version for r in await _append(store, stream, 2)] == [2]


async def test_an_index_write_failing_after_the_answer_keeps_the_append_acknowledged(
    store: KafkaEventStore, stream: str, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fails_once(monkeypatch, "insert_events", RuntimeError("the index write failed"))
    assert [r.version for r in await _append(store, stream, 2)] == [2]
    assert store.writer.alive
    # The next batch re-reads the topic's tail into the index first.
    assert [r.version for r in await _append(store, stream, 3)] == [3]
    assert [r.version for r in await store.read(stream)] == [1, 2, 3]


async def test_every_queued_append_is_answered_through_any_failure(
    store: KafkaEventStore, broker: FakeBroker
) -> None:
    broker.arm(
        "flush",
        _raise(SystemError("Delivery.__call__ returned a result with an exception set")),
        _fatal,
        _broken_report,
        _raise(KeyboardInterrupt()),
    )
    broker.arm("commit", _lands_then_times_out, _raise(RuntimeError("anything")))
    outcomes: dict[str, Any] = {}
    for _ in range(8):  # waves of appends queued at once, so that batches hold several
        streams = [_stream() for _ in range(25)]
        futures = [store.writer.append(s, 0, [event_record(s, 1)]) for s in streams]
        answers = await asyncio.wait_for(
            asyncio.gather(*futures, return_exceptions=True), ANSWER_BOUND
        )
        outcomes.update(zip(streams, answers, strict=True))
    refused = {s: a for s, a in outcomes.items() if isinstance(a, BaseException)}
    assert all(isinstance(a, StoreUnavailableError) for a in refused.values()), refused
    assert refused, "the faults refused nothing"
    assert store.writer.alive
    # Each stream landed once at most: every acknowledged one, and a refused one only when its
    # commit was unknown; the index shows exactly what landed.
    landed = [r.stream_id for r in broker.committed()]
    assert len(landed) == len(set(landed))
    acknowledged = set(outcomes) - set(refused)
    unknown = {s for s, a in refused.items() if "may or may not" in str(a)}
    assert acknowledged <= set(landed) <= acknowledged | unknown
    broker.faults.clear()
    await _append(store, _stream(), 1)  # the index re-reads the tail before this batch
    assert {s for s in outcomes if await store.stream_version(s) == 1} == set(landed)


async def test_close_answers_every_queued_append_and_later_ones_at_once(
    store: KafkaEventStore, broker: FakeBroker
) -> None:
    streams = [_stream() for _ in range(50)]
    pending = [store.writer.append(s, 0, [event_record(s, 1)]) for s in streams]
    await asyncio.wait_for(store.close(), ANSWER_BOUND)
    answers = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), ANSWER_BOUND)
    assert all(isinstance(a, list) for a in answers), answers
    stream = _stream()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await store.append(stream, 0, [event_record(stream, 1)])


@pytest.mark.parametrize("heard", [True, False], ids=["restart-heard", "restart-unheard"])
async def test_a_commit_whose_marker_a_broker_restart_lost_is_not_acknowledged(
    store: KafkaEventStore, stream: str, broker: FakeBroker, heard: bool
) -> None:
    """The coordinator confirms the commit but skips the partition's marker: the transaction
    stays open there, so the append is not answered "stored". The retry writes it once."""
    broker.arm("commit", _markers_lost(heard=heard))
    first = [event_record(stream, 2)]
    with pytest.raises(StoreUnavailableError, match="may or may not be stored"):
        await asyncio.wait_for(store.append(stream, 1, first), ANSWER_BOUND)

    assert [r.version for r in await store.append(stream, 1, first)] == [2]
    assert broker.stable == len(broker.log)
    committed = broker.committed()
    assert [r.version for r in committed] == [1, 2]
    assert [r.event_id for r in committed].count(first[0].event_id) == 1
    assert [r.version for r in await store.read(stream)] == [1, 2]


async def test_an_append_is_acknowledged_only_once_nothing_can_abort_it(
    store: KafkaEventStore, stream: str, broker: FakeBroker
) -> None:
    """The broker loses a commit's marker, then ending the transaction left open fails midway:
    the next producer's init aborts our ending transaction, and its marker aborts everything
    the partition held open. Every append answered "stored" is still committed."""
    acknowledged = [r.event_id for r in await store.read(stream)]
    broker.arm("commit", _markers_lost())
    broker.arm("abort", _raise(KafkaException(KafkaError(KafkaError._TIMED_OUT))))
    records = [event_record(stream, 2)]
    with pytest.raises(StoreUnavailableError, match="may or may not be stored"):
        await asyncio.wait_for(store.append(stream, 1, records), ANSWER_BOUND)

    acknowledged += [r.event_id for r in await store.append(stream, 1, records)]
    first_try = [e for e in broker.log if e.value and records[0].event_id.encode() in e.value]
    assert [e.state for e in first_try] == ["aborted", "committed"]
    assert [r.event_id for r in broker.committed()] == acknowledged
    assert [r.event_id for r in await store.read(stream)] == acknowledged


async def test_an_abort_whose_marker_a_broker_restart_lost_stays_aborted(
    store: KafkaEventStore, stream: str, broker: FakeBroker
) -> None:
    broker.arm("flush", _broken_report)
    broker.arm("abort", _markers_lost())
    refused = [event_record(stream, 2)]
    with pytest.raises(StoreUnavailableError, match="none written"):
        await asyncio.wait_for(store.append(stream, 1, refused), ANSWER_BOUND)
    assert broker.stable < len(broker.log)

    assert [r.version for r in await _append(store, stream, 2)] == [2]
    assert broker.stable == len(broker.log)
    committed = broker.committed()
    assert [r.version for r in committed] == [1, 2]
    assert refused[0].event_id not in {r.event_id for r in committed}


async def test_an_unknown_commit_whose_marker_a_broker_restart_lost_is_aborted(
    store: KafkaEventStore, stream: str, broker: FakeBroker
) -> None:
    broker.arm("commit", _markers_lost(then=_lands_then_times_out))
    unknown = [event_record(stream, 2)]
    with pytest.raises(StoreUnavailableError, match="may or may not be stored"):
        await asyncio.wait_for(store.append(stream, 1, unknown), ANSWER_BOUND)

    # Not acknowledged, so ended as aborted: the retry writes version 2 once.
    assert [r.version for r in await _append(store, stream, 2)] == [2]
    assert broker.stable == len(broker.log)
    committed = broker.committed()
    assert [r.version for r in committed] == [1, 2]
    assert unknown[0].event_id not in {r.event_id for r in committed}
    assert [r.version for r in await store.read(stream)] == [1, 2]


async def _producer_dropped(
    store: KafkaEventStore, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, int]:
    """A batch fails and drops the producer; the next one is started by the next append (the
    idle restart is put off). Returns the producers made and initialised so far."""
    monkeypatch.setattr(writer_module, "_IDLE_REPAIR", ANSWER_BOUND * 10)
    stream = _stream()
    broker.arm("flush", _raise(RuntimeError("anything")))
    with pytest.raises(StoreUnavailableError, match="none written"):
        await _append(store, stream, 1)
    return broker.producers, broker.initialised


async def test_an_init_that_may_be_retried_is_retried_by_the_same_producer(
    store: KafkaEventStore, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    producers, initialised = await _producer_dropped(store, broker, monkeypatch)
    stream = _stream()
    busy = KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, "loading", retriable=True)
    broker.arm("init", _raise(KafkaException(busy)))
    with pytest.raises(StoreUnavailableError, match="did not initialise"):
        await _append(store, stream, 1)
    assert [r.version for r in await _append(store, stream, 1)] == [1]
    assert broker.producers == producers + 1
    assert broker.initialised == initialised + 1


async def test_a_producer_that_cannot_start_is_replaced(
    store: KafkaEventStore, broker: FakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    producers, _ = await _producer_dropped(store, broker, monkeypatch)
    stream = _stream()
    broker.arm("init", _raise(KafkaException(KafkaError(KafkaError.FENCED_LEADER_EPOCH))))
    with pytest.raises(StoreUnavailableError, match="did not initialise"):
        await _append(store, stream, 1)
    assert [r.version for r in await _append(store, stream, 1)] == [1]
    assert broker.producers == producers + 2


async def test_a_take_over_whose_init_fails_is_tried_again_while_the_partition_is_assigned(
    broker: FakeBroker, tmp_path: Path
) -> None:
    config = KafkaConfig(
        bootstrap="fake:9092", index_path=tmp_path / INDEX_FILE, topic=TOPIC, partitions=1
    )
    busy = KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, "loading", retriable=True)
    broker.arm("init", _raise(KafkaException(busy)))
    store = KafkaEventStore(config)
    await store.start()  # returns once the partition is taken over: by the second attempt
    try:
        stream = _stream()
        assert store.placement.place(stream) == HERE
        assert [r.version for r in await _append(store, stream, 1)] == [1]
        assert (broker.producers, broker.initialised) == (2, 1)
        assert store.writer.takeovers == 1
    finally:
        await store.close()
