"""The writer thread: owns the transactional producer and the local index's write connection.

Group commit, Kafka style. Appends queue up with a future each; the thread drains the queue,
checks every append's expected version against the per-stream version index (in memory, backed
by the local index), produces the accepted appends' records in ONE Kafka transaction, commits it
once, resolves the futures, and then writes the records into the local index. So:

- a multi-event append is atomic (one transaction; consumers read ``read_committed``);
- an append is acknowledged only after the broker acknowledged the transaction;
- reads wait for the index (``wait_indexed``): one that starts after an acknowledgement sees
  what was acknowledged, though the answer did not wait for the index write;
- if the transaction fails, every append in it gets ``StoreUnavailableError``, the version index
  does not move, and nothing of it becomes visible to ``read_committed`` readers (the broker
  aborts it: explicitly, on the next ``init_transactions`` of the same ``transactional.id``, or
  after ``transaction.timeout.ms``);
- no exception ends the thread: a batch that fails in any way is refused (what it has not
  answered gets ``StoreUnavailableError``) and the producer is rebuilt; a new producer ends a
  transaction that a broker restart left open on a partition (``_finish_hanging``) and re-reads
  the topic's tail before the next version check.

The version check is exact because ONE writer process owns the topic: its ``init_transactions``
fences any older producer with the same ``transactional.id`` (a zombie's commit fails), and every
new producer first re-reads the topic's tail into the index before it accepts an append. See
docs/kafka.md for the multi-writer plan.

Every confluent-kafka call that can block runs here, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from confluent_kafka.cimpl import NewTopic

from core.errors import ConcurrencyError, StoreUnavailableError
from core.eventsourcing.checkpoints import DEFAULT_PERIOD, WalCheckpointer
from core.eventsourcing.schema import open_connection
from core.records import EventRecord, Snapshot, decode_record, encode_record
from plugins.kafka import index
from plugins.kafka.config import KafkaConfig

__all__ = ["KafkaWriter", "kafka_unavailable"]

log = logging.getLogger(__name__)

_ADMIN_TIMEOUT: Final = 10.0  # topic creation and description at start-up
_CATCH_UP_IDLE: Final = 10.0  # a catch-up that receives nothing for this long gives up
_ABORT_TIMEOUT: Final = 1.0
_RETRY_PAUSE: Final = 0.5  # between a producer that failed to start and the next one
_LATEST: Final = OffsetSpec.latest()  # type: ignore[no-untyped-call]


def kafka_unavailable(message: str, error: BaseException | None = None) -> StoreUnavailableError:
    """The error for a caller. The cause keeps no traceback: its frames would hold a dropped
    producer (and its librdkafka threads) for as long as the answer lives."""
    failure = StoreUnavailableError(f"{message}: {error}" if error is not None else message)
    failure.__cause__ = error
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        cause.__traceback__ = None
        cause = cause.__cause__ or cause.__context__
    return failure


@dataclass(slots=True)
class _Append:
    stream_id: str
    expected: int
    records: Sequence[EventRecord]
    future: asyncio.Future[list[EventRecord]]
    deadline: float  # time.monotonic()


@dataclass(slots=True)
class _SaveSnapshot:
    snapshot: Snapshot
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Stop:
    future: asyncio.Future[None]


_Item = _Append | _SaveSnapshot | _Stop
_Outcome = tuple[asyncio.Future[Any], bool, Any]


@dataclass(slots=True)
class _Delivery:
    """Where one produced record landed (filled by the delivery callback).

    librdkafka calls it inside ``flush``/``poll``. It must never raise: an exception escaping a
    callback comes out of that call (as itself, or as ``SystemError: ... returned a result with
    an exception set``) instead of as this record's outcome."""

    partition: int = -1
    offset: int = -1
    error: KafkaError | BaseException | None = None
    done: bool = False

    def __call__(self, error: KafkaError | None, message: Any) -> None:
        try:
            if error is not None:
                self.error = error
            else:
                self.partition = int(message.partition())
                self.offset = int(message.offset())
        except BaseException as failure:  # the record's outcome, never librdkafka's problem
            self.error = failure
        finally:
            self.done = True

    @property
    def placed(self) -> bool:
        return self.done and self.error is None and self.partition >= 0 and self.offset >= 0


@dataclass(slots=True)
class _ProducerErrors:
    """One producer's ``error_cb`` (run inside ``flush``/``poll``; never raises, like
    ``_Delivery``). It notes that every broker went away (a restart, say): the writer then
    replaces the producer, and the new one checks the partitions for a transaction the restart
    left open (``_finish_hanging``) before the next append.

    A fatal error (fenced, ...) never comes here: confluent-kafka raises it out of the call
    that serves it, as a ``KafkaException``, or as ``SystemError: _Delivery.__call__ returned
    a result with an exception set`` when a delivery report is served after it in the same
    ``flush``. Either way the writer drops that producer (``_abort``)."""

    brokers_lost: bool = False

    def __call__(self, error: KafkaError) -> None:
        with contextlib.suppress(BaseException):
            if error.code() == KafkaError._ALL_BROKERS_DOWN:
                self.brokers_lost = True


@dataclass(slots=True)
class _Batch:
    """The appends accepted into one transaction, and the outcomes decided without Kafka."""

    accepted: list[_Append] = field(default_factory=list)
    deliveries: list[list[_Delivery]] = field(default_factory=list)
    outcomes: list[_Outcome] = field(default_factory=list)


class KafkaWriter:
    def __init__(self, config: KafkaConfig) -> None:
        self._config = config
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False
        # Taken to queue an item and by the thread when it stops accepting: nothing can be
        # queued after the thread's last look at the queue, so every future gets its answer.
        self._gate = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._checkpointer: WalCheckpointer | None = None
        self._admin: AdminClient | None = None
        self._producer: Producer | None = None
        self._producer_errors = _ProducerErrors()
        self._initialised = False  # init_transactions has succeeded on self._producer
        self._retry_at = 0.0  # no new producer before (time.monotonic()), after a failed one
        self._resync = True  # re-read the topic's tail before the next append
        self._versions: dict[str, int] = {}  # stream → committed version (a cache of the index)
        self.partitions = 0
        # Batches answered and batches written into the index (numbered from 1), set by the
        # writer thread and read by the reader threads, which wait on the condition.
        self._answered = 0
        self._indexed = 0
        self._index_reached = threading.Condition()
        self.batches = 0  # committed transactions, for diagnostics
        self.appends = 0
        self.caught_up = 0  # events indexed by catch-ups (start-up and resyncs)

    # -- the event loop's side ----------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._accepting and self._thread is not None and self._thread.is_alive()

    @property
    def admin(self) -> AdminClient | None:
        return self._admin

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        opened: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(loop, opened), name=f"kafka-writer:{self._config.topic}"
        )
        self._thread.daemon = True
        self._thread.start()
        await opened
        self._accepting = True

    def append(
        self, stream_id: str, expected: int, records: Sequence[EventRecord]
    ) -> asyncio.Future[list[EventRecord]]:
        with self._gate:
            loop = self._check_open()
            future: asyncio.Future[list[EventRecord]] = loop.create_future()
            deadline = time.monotonic() + self._config.append_timeout
            self._queue.put(_Append(stream_id, expected, records, future, deadline))
        return future

    def save_snapshot(self, snapshot: Snapshot) -> asyncio.Future[None]:
        with self._gate:
            loop = self._check_open()
            future: asyncio.Future[None] = loop.create_future()
            self._queue.put(_SaveSnapshot(snapshot, future))
        return future

    async def close(self) -> None:
        with self._gate:
            if not self.alive or self._loop is None:
                self._accepting = False
                return
            self._accepting = False
            done: asyncio.Future[None] = self._loop.create_future()
            self._queue.put(_Stop(done))
        await done

    @property
    def answered(self) -> int:
        """The batches answered so far: what a read that starts now must find in the index."""
        return self._answered

    def wait_indexed(self, answered: int) -> None:
        """Blocks (a reader thread) until the index holds the first ``answered`` batches: at
        once, unless a batch has been answered and its index write is still running."""
        if self._indexed >= answered:
            return
        with self._index_reached:
            self._index_reached.wait_for(
                lambda: self._indexed >= answered, timeout=self._config.append_timeout
            )

    def _index_up_to(self, batch: int) -> None:
        with self._index_reached:
            self._indexed = batch
            self._index_reached.notify_all()

    def _check_open(self) -> asyncio.AbstractEventLoop:
        if not self.alive or self._loop is None:
            raise StoreUnavailableError(f"the Kafka event store ({self._config.topic}) is closed")
        return self._loop

    # -- the thread ---------------------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[None]) -> None:
        try:
            self._open()
        except Exception as error:
            with contextlib.suppress(Exception):
                self._release()
            failure = error if isinstance(error, StoreUnavailableError) else None
            if failure is None:
                failure = kafka_unavailable("the Kafka event store cannot start", error)
            loop.call_soon_threadsafe(_settle, [(opened, False, failure)])
            return
        loop.call_soon_threadsafe(_settle, [(opened, True, None)])
        stop: _Stop | None = None
        batch: list[_Append | _SaveSnapshot] = []
        try:
            while stop is None:
                batch = []
                appends: list[_Append] = []
                snapshots: list[_SaveSnapshot] = []
                item = self._queue.get()
                while True:
                    if isinstance(item, _Stop):
                        stop = item
                        break
                    batch.append(item)
                    if isinstance(item, _Append):
                        appends.append(item)
                    else:
                        snapshots.append(item)
                    if len(appends) >= self._config.max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                try:
                    self._serve(loop, appends, snapshots)
                except BaseException as error:
                    # Whatever it was (a bug, a callback's exception out of librdkafka), the
                    # thread goes on: this batch is refused and the producer rebuilt.
                    self._batch_failed(loop, batch, error)
        except BaseException as error:  # not even a batch failure could be handled
            log.exception("the Kafka writer thread failed")
            _call_soon(loop, _settle, _refuse(batch, "the Kafka writer thread failed", error))
            raise
        finally:
            with self._gate:
                self._accepting = False
            self._drain(
                loop, kafka_unavailable(f"the Kafka event store ({self._config.topic}) is closed")
            )
            try:
                self._release()
            except Exception:
                log.exception("could not release the Kafka writer's resources")
            self._index_up_to(self._answered)  # no read waits for a write that will not come
            if stop is not None:
                _call_soon(loop, _settle, [(stop.future, True, None)])

    def _serve(
        self,
        loop: asyncio.AbstractEventLoop,
        appends: list[_Append],
        snapshots: list[_SaveSnapshot],
    ) -> None:
        """One batch: snapshots into the index, appends into one Kafka transaction, answers."""
        outcomes: list[_Outcome] = []
        placed: list[tuple[EventRecord, int]] = []
        if snapshots:
            outcomes += self._save_snapshots(snapshots)
        if appends:
            answers, placed = self._commit(appends)
            outcomes += answers
        if placed:
            self._answered += 1  # before any caller can see an answer
        _call_soon(loop, _settle, outcomes)
        if placed:  # after the answers: reads wait for it (``wait_indexed``)
            self._write_index(placed)
            self._index_up_to(self._answered)
        if placed or snapshots:
            self._index_committed()

    def _batch_failed(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[_Append | _SaveSnapshot],
        error: BaseException,
    ) -> None:
        """Refuse what the batch has not answered yet (an answer already on its way stays: it
        is settled first), and start over from Kafka: a new producer, whose
        ``init_transactions`` settles whatever transaction the old one left, then a re-read of
        the topic's tail before the next version check."""
        log.error("a Kafka writer batch failed; refused, the producer is rebuilt", exc_info=error)
        _call_soon(loop, _settle, _refuse(batch, "the Kafka event store failed", error))
        self._lose_producer()
        self._resync = True
        self._index_up_to(self._answered)

    def _drain(self, loop: asyncio.AbstractEventLoop, failure: BaseException) -> None:
        outcomes: list[_Outcome] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            ok = isinstance(item, _Stop)
            outcomes.append((item.future, ok, None if ok else failure))
        _call_soon(loop, _settle, outcomes)

    def _open(self) -> None:
        config = self._config
        config.index_path.parent.mkdir(parents=True, exist_ok=True)
        connection = open_connection(config.index_path, synchronous="NORMAL", writer=True)
        self._connection = connection
        connection.executescript(index.INDEX_DDL)
        # The index's WAL is checkpointed off this thread, as the SQLite store's is: SQLite's
        # own checkpoint, inside an index write, held up the answer to a whole batch of appends.
        checkpointer = WalCheckpointer(
            config.index_path, synchronous="NORMAL", period=DEFAULT_PERIOD
        )
        checkpointer.start(connection)
        self._checkpointer = checkpointer
        self._admin = AdminClient({"bootstrap.servers": config.bootstrap})
        topic_id = self._ensure_topic(self._admin)
        # The index is only valid for the topic (and its incarnation) it was built from.
        if (index.meta(connection, "topic"), index.meta(connection, "topic_id")) != (
            config.topic,
            topic_id,
        ):
            with connection:
                connection.execute("BEGIN")
                index.clear(connection)
                index.set_meta(connection, "topic", config.topic)
                index.set_meta(connection, "topic_id", topic_id)
        # Catch the index up now, so reads are served at once. The transactional producer is
        # made by the first append (_prepare): its init_transactions fences any older writer
        # with our transactional.id and re-reads the tail, so a process that only reads (a
        # projector, a query-only node) never fences the writer.
        self._catch_up(deadline=None)

    def _ensure_topic(self, admin: AdminClient) -> str:
        """Create the topic if missing; return its id (a deleted and re-created topic has a new
        one, which invalidates the index)."""
        config = self._config
        new = NewTopic(
            config.topic,
            num_partitions=config.partitions,
            replication_factor=config.replication,
            config={
                "retention.ms": "-1",  # the source of truth never expires
                "retention.bytes": "-1",
                "cleanup.policy": "delete",
                "min.insync.replicas": str(max(1, min(2, config.replication - 1))),
            },
        )
        try:
            admin.create_topics([new], operation_timeout=_ADMIN_TIMEOUT)[config.topic].result(
                _ADMIN_TIMEOUT
            )
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise kafka_unavailable(f"cannot create topic {config.topic}", error) from error
        except Exception as error:  # concurrent.futures.TimeoutError
            raise kafka_unavailable(f"cannot create topic {config.topic}", error) from error
        # Describe until the new topic's metadata has propagated.
        deadline = time.monotonic() + _ADMIN_TIMEOUT
        while True:
            try:
                futures = admin.describe_topics(
                    TopicCollection([config.topic]), request_timeout=_ADMIN_TIMEOUT
                )
                description = futures[config.topic].result(_ADMIN_TIMEOUT)
                self.partitions = len(description.partitions)
                return str(description.topic_id)
            except Exception as error:
                if time.monotonic() > deadline:
                    raise kafka_unavailable(
                        f"cannot describe topic {config.topic}", error
                    ) from error
                time.sleep(0.1)

    def _release(self) -> None:
        if self._producer is not None:
            self._dispose(self._producer)
            self._producer = None
        if self._checkpointer is not None:
            self._checkpointer.stop()  # before the close, whose own checkpoint empties the WAL
            self._checkpointer = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- producer lifecycle -------------------------------------------------------------------

    def _producer_config(self) -> dict[str, Any]:
        config = self._config
        timeout_ms = int(config.append_timeout * 1000)
        return {
            "bootstrap.servers": config.bootstrap,
            "transactional.id": config.transactional_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
            # Java clients' partitioner: a stream lands in the same partition from any client.
            "partitioner": "murmur2_random",
            "message.timeout.ms": timeout_ms,
            "transaction.timeout.ms": max(2 * timeout_ms, 10_000),
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
        }

    def _prepare(self, deadline: float | None) -> Producer:
        """A producer with initialised transactions, and an index caught up with the topic."""
        if self._producer is not None:
            reason = None
            try:
                self._producer.poll(0)  # serves the error callback (and raises a fatal error)
            except Exception as error:
                reason = f"an error ({error})"
            if reason is None and self._producer_errors.brokers_lost:
                reason = "the broker went away"
            if reason is not None:
                log.warning("replacing the Kafka producer after %s", reason)
                self._lose_producer()
        if self._producer is None:
            self._new_producer(deadline)
        if not self._initialised:
            self._start_producer(deadline)
        if self._resync:
            self._catch_up(deadline)
            self._resync = False
        producer = self._producer
        assert producer is not None
        return producer

    def _start_producer(self, deadline: float | None) -> None:
        """``init_transactions`` (fences an older writer, settles what it left open), then
        end a transaction a partition still holds open. (No local names the producer: a
        traceback kept by an answer would keep it alive.)"""
        assert self._producer is not None
        try:
            self._producer.init_transactions(_remaining(deadline))
        except Exception as error:
            kafka_error = _kafka_error(error)
            if kafka_error is None or not kafka_error.retriable():
                # Otherwise the same producer tries again with the next batch.
                self._lose_producer()
                self._retry_at = time.monotonic() + _RETRY_PAUSE
            raise kafka_unavailable("Kafka did not initialise the transactions", error) from error
        self._initialised = True
        self._resync = True
        try:
            self._finish_hanging(self._producer, deadline)
        except Exception as error:
            self._lose_producer()
            self._retry_at = time.monotonic() + _RETRY_PAUSE
            raise kafka_unavailable("cannot end a transaction left open", error) from error

    def _new_producer(self, deadline: float | None) -> None:
        """After a producer failed to start, the next one waits a moment: a broker that is
        starting up refuses at once, and a new producer per batch would pile up threads."""
        pause = self._retry_at - time.monotonic()
        if pause > 0:
            if deadline is not None and time.monotonic() + pause >= deadline:
                raise kafka_unavailable("Kafka is unavailable; a new producer is tried soon")
            time.sleep(pause)
        errors = _ProducerErrors()
        try:
            self._producer = Producer({**self._producer_config(), "error_cb": errors})
        except Exception as error:
            self._retry_at = time.monotonic() + _RETRY_PAUSE
            raise kafka_unavailable("cannot create the Kafka producer", error) from error
        self._producer_errors = errors
        self._initialised = False

    def _finish_hanging(self, producer: Producer, deadline: float | None) -> None:
        """End a transaction of ours that a partition still holds open.

        A broker restarted in the middle of a commit or an abort may skip the marker of a
        partition whose leader it does not know yet (it takes it for deleted) and call the
        transaction complete: that partition keeps it open for good, and every read_committed
        reader (the catch-up, the projections) stops at its first record. Only a marker of this
        ``transactional.id`` ends it. After ``init_transactions`` nothing of ours is open, and
        nobody else writes the topic, so a partition whose committed end (LSO) is short of its
        end holds such a transaction. A transaction that writes an empty record (readers skip
        it: not an event) into such partitions ends them: committed where the index holds one
        of the open records (an acknowledged append: its commit was confirmed), aborted
        elsewhere (those appends were answered "none written" or "may or may not"; the catch-up
        then indexes what landed)."""
        hanging = self._hanging(deadline)
        if not hanging:
            return
        opened = self._open_records(hanging, deadline)
        stored = index.find_event_ids(
            self._require_connection(), [i for ids in opened.values() for i in ids]
        )
        commit = sorted(p for p, ids in opened.items() if stored.intersection(ids))
        abort = sorted(p for p in hanging if p not in commit)
        log.warning(
            "%s partitions %s hold a transaction left open; committing %s, aborting %s",
            self._config.topic,
            sorted(hanging),
            commit,
            abort,
        )
        for partitions, committed in ((commit, True), (abort, False)):
            if partitions:
                self._end_open(producer, partitions, committed, deadline)
        # The markers are written after the transaction ends: wait for them.
        while self._hanging(deadline, among=sorted(hanging)):
            if deadline is not None and time.monotonic() > deadline:
                raise kafka_unavailable(f"{self._config.topic} partitions {hanging} stay open")
            time.sleep(0.05)

    def _end_open(
        self, producer: Producer, partitions: list[int], commit: bool, deadline: float | None
    ) -> None:
        """One transaction with an empty record in each partition, committed or aborted: its
        marker ends what the partition holds open."""
        producer.begin_transaction()
        deliveries = [_Delivery() for _ in partitions]
        for partition, delivery in zip(partitions, deliveries, strict=True):
            producer.produce(self._config.topic, partition=partition, on_delivery=delivery)
        if producer.flush(_remaining(deadline)) or not all(d.placed for d in deliveries):
            raise kafka_unavailable("Kafka did not take the records that end an open transaction")
        while True:
            try:
                end = producer.commit_transaction if commit else producer.abort_transaction
                end(_remaining(deadline))
                return
            except KafkaException as error:
                kafka_error = _kafka_error(error)
                late = deadline is not None and time.monotonic() > deadline
                if kafka_error is None or not kafka_error.retriable() or late:
                    raise

    def _hanging(
        self, deadline: float | None, among: Sequence[int] | None = None
    ) -> dict[int, tuple[int, int]]:
        """The partitions whose last stable offset is short of their end: (LSO, end) each."""
        stable = self._ends(IsolationLevel.READ_COMMITTED, deadline, among)
        end = self._ends(IsolationLevel.READ_UNCOMMITTED, deadline, among)
        return {p: (stable[p], end[p]) for p in stable if stable[p] < end[p]}

    def _open_records(
        self, hanging: dict[int, tuple[int, int]], deadline: float | None
    ) -> dict[int, list[str]]:
        """The event ids of the records each partition holds open (read uncommitted)."""
        config = self._config
        consumer = self._reader("read_uncommitted")
        opened: dict[int, list[str]] = {p: [] for p in hanging}
        try:
            consumer.assign(
                [TopicPartition(config.topic, p, lso) for p, (lso, _) in hanging.items()]
            )
            left = set(hanging)
            limit = deadline if deadline is not None else time.monotonic() + _CATCH_UP_IDLE
            while left:
                if time.monotonic() > limit:
                    raise kafka_unavailable(f"cannot read what {config.topic} holds open")
                for message in consumer.consume(num_messages=config.batch_size, timeout=0.2):
                    partition, offset = message.partition() or 0, message.offset() or 0
                    error = message.error()
                    if error is not None and error.code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(error)
                    if error is None:
                        with contextlib.suppress(msgspec.DecodeError):
                            opened[partition].append(decode_record(message.value() or b"").event_id)
                    if error is not None or offset + 1 >= hanging[partition][1]:
                        left.discard(partition)
        finally:
            with contextlib.suppress(Exception):
                consumer.close()
        return opened

    def _ends(
        self, isolation: IsolationLevel, deadline: float | None, among: Sequence[int] | None = None
    ) -> dict[int, int]:
        """Each partition's end offset as a reader of ``isolation`` sees it (read_committed: the
        last stable offset)."""
        admin = self._admin
        if admin is None:
            raise StoreUnavailableError("the Kafka admin client is not open")
        partitions = range(self.partitions) if among is None else among
        wanted = {TopicPartition(self._config.topic, p): _LATEST for p in partitions}
        if deadline is None:
            deadline = time.monotonic() + _ADMIN_TIMEOUT
        while True:
            timeout = _remaining(deadline)
            try:
                futures = admin.list_offsets(
                    wanted, isolation_level=isolation, request_timeout=timeout
                )
                return {
                    tp.partition: future.result(timeout).offset for tp, future in futures.items()
                }
            except Exception as error:  # KafkaException, concurrent.futures.TimeoutError
                # A new topic's leaders take a moment to be known (NOT_LEADER_FOR_PARTITION,
                # which admin results do not mark retriable). After a broker restart the admin
                # client keeps the old leader epochs and gets FENCED_LEADER_EPOCH for good: a
                # new client asks afresh.
                if time.monotonic() + 0.2 > deadline:
                    topic = self._config.topic
                    raise kafka_unavailable(f"cannot list the offsets of {topic}", error) from error
                admin = self._admin = AdminClient({"bootstrap.servers": self._config.bootstrap})
            time.sleep(0.1)

    def _dispose(self, producer: Producer) -> None:
        """Drop a producer whose transaction state is unknown or broken. Whatever it left open
        on the broker is aborted by the next producer's ``init_transactions`` (fencing)."""
        with contextlib.suppress(Exception):
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.poll(0)
        self._resync = True
        self._versions.clear()

    def _lose_producer(self) -> None:
        if self._producer is not None:
            self._dispose(self._producer)
            self._producer = None
        self._producer_errors = _ProducerErrors()
        self._initialised = False

    # -- catch-up: the topic's tail into the index --------------------------------------------

    def _catch_up(self, deadline: float | None) -> None:
        config = self._config
        connection = self._require_connection()
        consumer = self._reader("read_committed")
        try:
            stored = index.next_offsets(connection)
            # A partition that holds a transaction open (see _finish_hanging) shows a reader
            # nothing past its last stable offset, and reports no end either when the index
            # is already past it (its acknowledged records are indexed): nothing to read there.
            stable = self._ends(IsolationLevel.READ_COMMITTED, deadline)
            consumer.assign(
                [
                    TopicPartition(config.topic, p, stored.get(p, OFFSET_BEGINNING))
                    for p in range(self.partitions)
                ]
            )
            at_end = {p for p, offset in stable.items() if stored.get(p, 0) >= offset}
            last_progress = time.monotonic()
            while len(at_end) < self.partitions:
                now = time.monotonic()
                if deadline is not None and now > deadline:
                    raise kafka_unavailable(f"catching up with {config.topic} timed out")
                if now - last_progress > _CATCH_UP_IDLE:
                    raise kafka_unavailable(f"catching up with {config.topic}: no answer")
                messages = consumer.consume(num_messages=config.batch_size, timeout=0.2)
                if not messages:
                    continue
                last_progress = time.monotonic()
                events: list[tuple[EventRecord, int]] = []
                offsets: dict[int, int] = {}
                for message in messages:
                    partition, offset = message.partition() or 0, message.offset() or 0
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            at_end.add(partition)
                            offsets[partition] = max(offsets.get(partition, 0), offset)
                            continue
                        raise KafkaException(error)
                    at_end.discard(partition)
                    offsets[partition] = offset + 1
                    try:
                        record = decode_record(message.value() or b"")
                    except msgspec.DecodeError:
                        log.warning(
                            "%s[%d]@%d is not an event; skipped", config.topic, partition, offset
                        )
                        continue
                    events.append((msgspec.structs.replace(record, position=offset + 1), partition))
                with connection:
                    connection.execute("BEGIN")
                    index.insert_events(connection, events)
                    index.set_offsets(connection, offsets)
                self.caught_up += len(events)
                self._index_committed()
        except KafkaException as error:
            raise kafka_unavailable(f"cannot read {config.topic}", error) from error
        except sqlite3.Error as error:
            raise kafka_unavailable(f"cannot write {config.index_path}", error) from error
        finally:
            with contextlib.suppress(Exception):
                consumer.close()
        self._versions.clear()

    def _reader(self, isolation: str) -> Consumer:
        """A consumer to assign partitions to by hand, reporting each partition's end."""
        return Consumer(
            {
                "bootstrap.servers": self._config.bootstrap,
                "group.id": f"{self._config.group_prefix}-index",  # never joined nor committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": isolation,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )

    def _index_committed(self) -> None:
        """After a write to the index (and after the answers it holds are on their way)."""
        if self._checkpointer is not None and self._connection is not None:
            self._checkpointer.committed(self._connection)

    # -- appends ------------------------------------------------------------------------------

    def _require_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreUnavailableError(f"{self._config.index_path} is not open")
        return self._connection

    def _version(self, stream_id: str) -> int:
        version = self._versions.get(stream_id)
        if version is None:
            version = index.stream_version(stream_id, self._require_connection())
            self._versions[stream_id] = version
        return version

    def _check(self, appends: list[_Append]) -> _Batch:
        """Decide each append's fate against the committed versions plus the batch's own."""
        batch = _Batch()
        pending: dict[str, int] = {}
        ids: set[str] = set()
        stored = index.find_event_ids(
            self._require_connection(), [r.event_id for a in appends for r in a.records]
        )
        for append in appends:
            actual = pending.get(append.stream_id)
            if actual is None:
                actual = self._version(append.stream_id)
            if actual != append.expected:
                failure = ConcurrencyError(append.stream_id, append.expected, actual)
                batch.outcomes.append((append.future, False, failure))
                continue
            if not append.records:
                batch.outcomes.append((append.future, True, []))
                continue
            taken = [
                r.event_id for r in append.records if r.event_id in stored or r.event_id in ids
            ]
            if taken:
                message = f"stream {append.stream_id!r}: event id {taken[0]} is already stored"
                batch.outcomes.append((append.future, False, ValueError(message)))
                continue
            ids.update(r.event_id for r in append.records)
            pending[append.stream_id] = append.records[-1].version
            batch.accepted.append(append)
        return batch

    def _commit(
        self, appends: list[_Append]
    ) -> tuple[list[_Outcome], list[tuple[EventRecord, int]]]:
        """Every append's outcome, and the committed records to index (with their partitions)."""
        now = time.monotonic()
        late = [a for a in appends if a.deadline <= now]
        appends = [a for a in appends if a.deadline > now]
        outcomes: list[_Outcome] = [
            (a.future, False, kafka_unavailable("the append waited too long for Kafka"))
            for a in late
        ]
        if not appends:
            return outcomes, []
        deadline = min(a.deadline for a in appends)
        try:
            producer = self._prepare(deadline)
            batch = self._check(appends)
        except (StoreUnavailableError, sqlite3.Error) as error:
            unavailable = (
                error
                if isinstance(error, StoreUnavailableError)
                else kafka_unavailable("the local Kafka index failed", error)
            )
            return outcomes + [(a.future, False, unavailable) for a in appends], []
        outcomes += batch.outcomes
        if not batch.accepted:
            return outcomes, []
        failure = self._transact(producer, batch, deadline)
        if failure is not None:
            return outcomes + [(a.future, False, failure) for a in batch.accepted], []
        answers, placed = self._placed(batch)
        return outcomes + answers, placed

    def _transact(
        self, producer: Producer, batch: _Batch, deadline: float
    ) -> StoreUnavailableError | None:
        """Produce and commit the batch; None when the broker acknowledged the commit."""
        topic = self._config.topic
        try:
            producer.begin_transaction()
            for append in batch.accepted:
                deliveries = []
                for record in append.records:
                    delivery = _Delivery()
                    producer.produce(
                        topic,
                        key=append.stream_id.encode(),
                        value=encode_record(record),
                        headers=[("type", record.type.encode())],
                        on_delivery=delivery,
                    )
                    deliveries.append(delivery)
                batch.deliveries.append(deliveries)
            remaining = producer.flush(max(deadline - time.monotonic(), 0.0))
        except Exception as error:  # KafkaException, BufferError, or what a callback raised
            self._abort(producer, error)
            return kafka_unavailable("Kafka refused the appends; none written", error)
        reason = self._undelivered(batch, remaining)
        if reason is not None:
            self._abort(producer, None)
            return kafka_unavailable(f"Kafka did not take the appends ({reason}); none written")
        while True:
            try:
                producer.commit_transaction(max(deadline - time.monotonic(), 0.1))
                return None
            except Exception as exception:
                kafka_error = _kafka_error(exception)
                if kafka_error is not None and not kafka_error.fatal():
                    if kafka_error.txn_requires_abort():
                        self._abort(producer, exception)
                        return kafka_unavailable(
                            "Kafka aborted the transaction; none written", exception
                        )
                    if kafka_error.retriable() and time.monotonic() < deadline:
                        continue
                # The commit may or may not have happened: start over with a new producer
                # (whose init_transactions settles it) and re-read the tail before the next
                # version check, so the versions and event ids show what really landed.
                self._lose_producer()
                return kafka_unavailable(
                    "Kafka did not confirm the commit; the appends may or may not be stored",
                    exception,
                )

    def _undelivered(self, batch: _Batch, remaining: int) -> str | None:
        """Why the flushed records cannot be committed; None when every one was placed."""
        if remaining:
            return "timed out"
        for deliveries in batch.deliveries:
            for delivery in deliveries:
                if delivery.error is not None:
                    return str(delivery.error) or type(delivery.error).__name__
                if not delivery.placed:
                    return "no delivery report"
        return None

    def _abort(self, producer: Producer, error: BaseException | None) -> None:
        """Abort the open transaction, or drop the producer when it cannot be trusted to: a
        fatal error, an exception that did not come from Kafka (``SystemError`` out of
        ``flush``, ...), or a failed abort."""
        kafka_error = None if error is None else _kafka_error(error)
        if error is not None and (kafka_error is None or kafka_error.fatal()):
            self._lose_producer()
            return
        try:
            producer.abort_transaction(_ABORT_TIMEOUT)
        except Exception as failure:
            log.warning("Kafka transaction abort failed (%s); recreating the producer", failure)
            self._lose_producer()

    def _placed(self, batch: _Batch) -> tuple[list[_Outcome], list[tuple[EventRecord, int]]]:
        """After the commit: the records where Kafka placed them, the versions advanced."""
        outcomes: list[_Outcome] = []
        events: list[tuple[EventRecord, int]] = []
        for append, deliveries in zip(batch.accepted, batch.deliveries, strict=True):
            stored = []
            for record, delivery in zip(append.records, deliveries, strict=True):
                placed = msgspec.structs.replace(record, position=delivery.offset + 1)
                stored.append(placed)
                events.append((placed, delivery.partition))
            self._versions[append.stream_id] = append.records[-1].version
            outcomes.append((append.future, True, stored))
        self.batches += 1
        self.appends += len(batch.accepted)
        return outcomes, events

    def _write_index(self, events: list[tuple[EventRecord, int]]) -> None:
        try:
            # One statement, committed alone: it also moves the offsets (a trigger).
            index.insert_events(self._require_connection(), events)
        except sqlite3.Error:
            # Kafka has them (the source of truth): they stay acknowledged, and are re-read
            # into the index before the next batch. The versions stay right meanwhile.
            log.exception("could not index a committed Kafka batch; will re-read the topic")
            self._resync = True

    # -- snapshots ----------------------------------------------------------------------------

    def _save_snapshots(self, items: list[_SaveSnapshot]) -> list[_Outcome]:
        connection = self._require_connection()
        try:
            with connection:
                connection.execute("BEGIN")
                for item in items:
                    index.save_snapshot(item.snapshot, connection)
        except sqlite3.Error as error:
            failure = kafka_unavailable("cannot save the snapshot", error)
            return [(item.future, False, failure) for item in items]
        return [(item.future, True, None) for item in items]


def _remaining(deadline: float | None) -> float:
    """A timeout for one Kafka call: what is left of ``deadline`` (30 s without one)."""
    return 30.0 if deadline is None else max(deadline - time.monotonic(), 0.1)


def _kafka_error(error: BaseException) -> KafkaError | None:
    """The ``KafkaError`` a ``KafkaException`` carries; None for any other exception."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0]
    return None


def _refuse(
    items: Sequence[_Append | _SaveSnapshot], message: str, error: BaseException
) -> list[_Outcome]:
    failure = kafka_unavailable(message, error)
    return [(item.future, False, failure) for item in items]


def _settle(outcomes: list[_Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)
