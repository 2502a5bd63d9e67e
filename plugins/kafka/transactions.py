"""One batch of appends into one Kafka transaction, on the writer's partition.

Each append's expected version is checked against the committed versions plus the batch's own;
the accepted appends' records are produced and committed once; every append gets its outcome,
and the committed records go to the local index with the partition Kafka placed them in. If
the transaction fails, every append in it gets ``StoreUnavailableError`` and the versions do
not move.

Once the events are flushed (their offsets known), the same transaction writes their streams'
heads and a watermark into the heads partition of the same number (head_writes.py). A commit
counts once both partitions show it: their last stable offsets past the batch's records, so the
commit markers are in the partitions' logs. The coordinator answers a commit before it
writes the markers, and a broker restarting in between may skip a partition's marker (see
hanging.py); the transaction then stays open there, and whatever marker ends it later decides
it. An append answered before its marker showed could be aborted that way after its caller
heard "stored". So a commit whose marker does not show by the append's deadline is answered
"may or may not be stored", as a commit Kafka did not confirm; an acknowledged append is in
the partition for good.

Every append refused here has its chain link marked failed (``requests.failed``), so an append
queued after it and chained to it is refused in its own version check. When Kafka did not
confirm a commit, its appends may have landed: the next catch-up looks for their events, and
the links of those that landed are whole again, so what was chained to them is checked by its
version like any other append."""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field

import msgspec
from confluent_kafka import IsolationLevel, KafkaError, KafkaException, Producer

from core.errors import ConcurrencyError, StoreUnavailableError
from core.records import EventRecord, encode_record
from plugins.kafka.delivery import Delivery
from plugins.kafka.errors import kafka_error, kafka_unavailable
from plugins.kafka.head_writes import HeadWrites
from plugins.kafka.local_index import LocalIndex
from plugins.kafka.producer import ProducerLifecycle
from plugins.kafka.requests import Append, Outcome, failed
from plugins.kafka.topic import KafkaTopic

__all__ = ["AppendTransactions"]

log = logging.getLogger(__name__)

_MARKER_GRACE = 1.0  # the least time a commit's marker gets to show, whatever the deadline

Placed = list[tuple[EventRecord, int]]


@dataclass(slots=True)
class _Batch:
    """The appends accepted into one transaction, and the outcomes decided without Kafka."""

    accepted: list[Append] = field(default_factory=list)
    deliveries: list[list[Delivery]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    heads: list[Delivery] = field(default_factory=list)  # the stream heads and the watermark
    watermark: int = 0


class AppendTransactions:
    def __init__(
        self, topic: KafkaTopic, local: LocalIndex, producers: ProducerLifecycle, partition: int
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._local = local
        self._producers = producers
        self.batches = 0  # committed transactions, for diagnostics
        self.appends = 0
        self._unconfirmed: list[Append] = []  # chained-to appends of an unconfirmed commit
        self.heads = HeadWrites(topic, local, partition)
        self.unsettled = False  # a commit's outcome is unknown until the partition is re-read

    def commit(self, appends: list[Append]) -> tuple[list[Outcome], Placed]:
        """Every append's outcome, and the committed records to index (with their partitions)."""
        now = time.monotonic()
        late = [a for a in appends if a.deadline <= now]
        appends = [a for a in appends if a.deadline > now]
        outcomes = failed(late, kafka_unavailable("the append waited too long for Kafka"))
        if not appends:
            return outcomes, []
        deadline = min(a.deadline for a in appends)
        try:
            producer = self.prepare(deadline)
            batch = self._check(appends)
        except (StoreUnavailableError, sqlite3.Error) as error:
            unavailable = (
                error
                if isinstance(error, StoreUnavailableError)
                else kafka_unavailable("the local Kafka index failed", error)
            )
            return outcomes + failed(appends, unavailable), []
        outcomes += batch.outcomes
        if not batch.accepted:
            return outcomes, []
        failure = self._transact(producer, batch, deadline)
        if failure is not None:
            return outcomes + failed(batch.accepted, failure), []
        answers, placed = self._placed(batch)
        return outcomes + answers, placed

    def prepare(self, deadline: float | None) -> Producer:
        """A producer with initialised transactions, and an index caught up with the topic."""
        producer = self._producers.ready(deadline)
        if self._local.stale:
            self._local.catch_up(self._topic, deadline)
            self._local.stale = False
            self._relink_landed()
        return producer

    def _relink_landed(self) -> None:
        """After a catch-up: the appends of an unconfirmed commit whose events the topic holds
        were written, so their links are whole again (the transaction wrote all or nothing)."""
        if not self._unconfirmed:
            return
        unconfirmed, self._unconfirmed = self._unconfirmed, []
        stored = self._local.find_event_ids(r.event_id for a in unconfirmed for r in a.records)
        for append in unconfirmed:
            if append.link is not None and all(r.event_id in stored for r in append.records):
                append.link.failed = False

    def _check(self, appends: list[Append]) -> _Batch:
        """Decide each append's fate against the committed versions plus the batch's own."""
        batch = _Batch()
        pending: dict[str, int] = {}
        ids: set[str] = set()
        stored = self._local.find_event_ids(r.event_id for a in appends for r in a.records)
        for append in appends:
            actual = pending.get(append.stream_id)
            if actual is None:
                actual = self._local.version(append.stream_id)
            if actual != append.expected or (append.link is not None and append.link.broken):
                failure = ConcurrencyError(append.stream_id, append.expected, actual)
                batch.outcomes += failed([append], failure)
                continue
            if not append.records:
                batch.outcomes.append((append.future, True, []))
                continue
            taken = [
                r.event_id for r in append.records if r.event_id in stored or r.event_id in ids
            ]
            if taken:
                message = f"stream {append.stream_id!r}: event id {taken[0]} is already stored"
                batch.outcomes += failed([append], ValueError(message))
                continue
            ids.update(r.event_id for r in append.records)
            pending[append.stream_id] = append.records[-1].version
            batch.accepted.append(append)
        return batch

    def _transact(
        self, producer: Producer, batch: _Batch, deadline: float
    ) -> StoreUnavailableError | None:
        """Produce and commit the batch; None when the broker acknowledged the commit."""
        topic = self._topic.config.topic
        try:
            producer.begin_transaction()
            batch.heads = self.heads.register(producer)  # joins the transaction with the events
            for append in batch.accepted:
                deliveries = []
                for record in append.records:
                    delivery = Delivery()
                    producer.produce(
                        topic,
                        partition=self._partition,
                        key=append.stream_id.encode(),
                        value=encode_record(record),
                        headers=[("type", record.type.encode())],
                        on_delivery=delivery,
                    )
                    deliveries.append(delivery)
                batch.deliveries.append(deliveries)
            remaining = producer.flush(max(deadline - time.monotonic(), 0.0))
            reason = _undelivered(batch.deliveries, remaining)
            if reason is None:  # the events' offsets are known: their heads, in the same
                heads, batch.watermark = self.heads.produce(
                    producer, batch.accepted, batch.deliveries
                )
                batch.heads += heads
                remaining = producer.flush(max(deadline - time.monotonic(), 0.0))
                reason = _undelivered([batch.heads], remaining)
        except Exception as error:  # KafkaException, BufferError, or what a callback raised
            self._producers.abort(producer, error)
            return kafka_unavailable("Kafka refused the appends; none written", error)
        if reason is not None:
            # A record refused because a newer writer fenced this one says so in its report.
            self._producers.note(_as_exception(reason.error))
            self._producers.abort(producer, None)
            return kafka_unavailable(
                f"Kafka did not take the appends ({reason.text}); none written",
                self._producers.fencing,
            )
        while True:
            try:
                producer.commit_transaction(max(deadline - time.monotonic(), 0.1))
                break
            except Exception as exception:
                failure = kafka_error(exception)
                if failure is not None and not failure.fatal():
                    if failure.txn_requires_abort():
                        self._producers.abort(producer, exception)
                        return kafka_unavailable(
                            "Kafka aborted the transaction; none written", exception
                        )
                    if failure.retriable() and time.monotonic() < deadline:
                        continue
                return self._unknown(batch, "Kafka did not confirm the commit", exception)
        if not self._marked(batch, deadline):
            return self._unknown(batch, "the partition does not show the commit")
        self.heads.committed(batch.watermark)
        return None

    def _marked(self, batch: _Batch, deadline: float) -> bool:
        """Whether the last stable offsets of the events partition and of the heads partition
        have passed the batch's records (their commit markers are written), asked until
        ``deadline`` (at least ``_MARKER_GRACE``)."""
        last = {
            (self._topic.config.topic, self._partition): batch.watermark - 1,
            self.heads.key: max(d.offset for d in batch.heads),
        }
        limit = max(deadline, time.monotonic() + _MARKER_GRACE)
        pause = 0.001
        while True:
            try:
                stable = self._topic.offsets(IsolationLevel.READ_COMMITTED, limit, list(last))
            except StoreUnavailableError:
                return False
            if all(stable.get(at, -1) > offset for at, offset in last.items()):
                return True
            if time.monotonic() + pause > limit:
                return False
            time.sleep(pause)
            pause = min(2 * pause, 0.05)

    def _unknown(
        self, batch: _Batch, reason: str, error: BaseException | None = None
    ) -> StoreUnavailableError:
        """The commit may or may not have happened: start over with a new producer (whose
        start ends what the partition holds open, hanging.py) and re-read the tail before the
        next version check, so the versions and event ids show what really landed."""
        self._producers.note(error)
        self._producers.lose()
        self._unconfirmed += [a for a in batch.accepted if a.link is not None]
        self.heads.unknown(a.stream_id for a in batch.accepted)
        self.unsettled = True
        return kafka_unavailable(f"{reason}; the appends may or may not be stored", error)

    def settle(self, deadline: float | None) -> None:
        """After a commit with an unknown outcome: a new producer (its start ends what the old
        one left open) and the partition re-read, so the index shows what really landed. When
        that fails, the next append tries again (``prepare``). ``None`` forgets the commit
        without a re-read: the partition is another writer's now."""
        self.unsettled = False
        if deadline is None:
            return
        try:
            self.prepare(deadline)
        except (StoreUnavailableError, sqlite3.Error) as error:
            log.info("the partition is re-read with the next append: %s", error)

    def _placed(self, batch: _Batch) -> tuple[list[Outcome], Placed]:
        """After the commit: the records where Kafka placed them, the versions advanced."""
        outcomes: list[Outcome] = []
        events: Placed = []
        for append, deliveries in zip(batch.accepted, batch.deliveries, strict=True):
            stored = []
            for record, delivery in zip(append.records, deliveries, strict=True):
                placed = msgspec.structs.replace(record, position=delivery.offset + 1)
                stored.append(placed)
                events.append((placed, delivery.partition))
            self._local.advance(append.stream_id, append.records[-1].version)
            outcomes.append((append.future, True, stored))
        self.batches += 1
        self.appends += len(batch.accepted)
        return outcomes, events


@dataclass(frozen=True, slots=True)
class _Undelivered:
    text: str
    error: KafkaError | BaseException | None = None  # a record's delivery error


def _undelivered(flushed: list[list[Delivery]], remaining: int) -> _Undelivered | None:
    """Why the flushed records cannot be committed; None when every one was placed."""
    if remaining:
        return _Undelivered("timed out")
    for deliveries in flushed:
        for delivery in deliveries:
            if delivery.error is not None:
                text = str(delivery.error) or type(delivery.error).__name__
                return _Undelivered(text, delivery.error)
            if not delivery.placed:
                return _Undelivered("no delivery report")
    return None


def _as_exception(error: KafkaError | BaseException | None) -> BaseException | None:
    return KafkaException(error) if isinstance(error, KafkaError) else error
