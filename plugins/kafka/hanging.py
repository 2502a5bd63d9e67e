"""Ending a transaction of ours that a broker restart left open on a partition.

A broker restarted in the middle of a commit or an abort may skip the marker of a partition
whose leader it does not know yet (it takes it for deleted) and call the transaction complete:
that partition keeps it open for good, and every read_committed reader (the catch-up, the
projections) stops at its first record. Only a marker of this ``transactional.id`` ends it.
After ``init_transactions`` nothing of ours is open, and nobody else writes the partition (its
one transactional id is ours), so a partition whose committed end (LSO) is short of its end
holds such a transaction. A transaction
that writes an empty record (readers skip it: not an event) into such partitions ends them:
committed where the index holds one of the open records (an acknowledged append: its commit was
confirmed), aborted elsewhere (those appends were answered "none written" or "may or may not";
the catch-up then indexes what landed)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence

import msgspec
from confluent_kafka import IsolationLevel, KafkaError, KafkaException, Producer, TopicPartition

from core.records import decode_record
from plugins.kafka import index
from plugins.kafka.catch_up import CATCH_UP_IDLE
from plugins.kafka.delivery import Delivery
from plugins.kafka.errors import kafka_error, kafka_unavailable, remaining
from plugins.kafka.topic import KafkaTopic

__all__ = ["finish_hanging"]

log = logging.getLogger(__name__)


def finish_hanging(
    producer: Producer,
    topic: KafkaTopic,
    connection: sqlite3.Connection,
    deadline: float | None,
    partitions: Sequence[int] | None = None,
) -> None:
    """End every transaction of ours that one of ``partitions`` (all by default: the ones
    ``producer`` writes) still holds open (``producer`` has just initialised its
    transactions), and wait until the partitions show it."""
    hanging = _hanging(topic, deadline, partitions)
    if not hanging:
        return
    opened = _open_records(topic, hanging, deadline)
    stored = index.find_event_ids(connection, [i for ids in opened.values() for i in ids])
    commit = sorted(p for p, ids in opened.items() if stored.intersection(ids))
    abort = sorted(p for p in hanging if p not in commit)
    log.warning(
        "%s partitions %s hold a transaction left open; committing %s, aborting %s",
        topic.config.topic,
        sorted(hanging),
        commit,
        abort,
    )
    for partitions, committed in ((commit, True), (abort, False)):
        if partitions:
            _end_open(producer, topic, partitions, committed, deadline)
    # The markers are written after the transaction ends: wait for them.
    while _hanging(topic, deadline, among=sorted(hanging)):
        if deadline is not None and time.monotonic() > deadline:
            raise kafka_unavailable(f"{topic.config.topic} partitions {hanging} stay open")
        time.sleep(0.05)


def _end_open(
    producer: Producer,
    topic: KafkaTopic,
    partitions: list[int],
    commit: bool,
    deadline: float | None,
) -> None:
    """One transaction with an empty record in each partition, committed or aborted: its
    marker ends what the partition holds open."""
    producer.begin_transaction()
    deliveries = [Delivery() for _ in partitions]
    for partition, delivery in zip(partitions, deliveries, strict=True):
        producer.produce(topic.config.topic, partition=partition, on_delivery=delivery)
    if producer.flush(remaining(deadline)) or not all(d.placed for d in deliveries):
        raise kafka_unavailable("Kafka did not take the records that end an open transaction")
    while True:
        try:
            end = producer.commit_transaction if commit else producer.abort_transaction
            end(remaining(deadline))
            return
        except KafkaException as error:
            failure = kafka_error(error)
            late = deadline is not None and time.monotonic() > deadline
            if failure is None or not failure.retriable() or late:
                raise


def _hanging(
    topic: KafkaTopic, deadline: float | None, among: Sequence[int] | None = None
) -> dict[int, tuple[int, int]]:
    """The partitions whose last stable offset is short of their end: (LSO, end) each."""
    stable = topic.ends(IsolationLevel.READ_COMMITTED, deadline, among)
    end = topic.ends(IsolationLevel.READ_UNCOMMITTED, deadline, among)
    return {p: (stable[p], end[p]) for p in stable if stable[p] < end[p]}


def _open_records(
    topic: KafkaTopic, hanging: dict[int, tuple[int, int]], deadline: float | None
) -> dict[int, list[str]]:
    """The event ids of the records each partition holds open (read uncommitted)."""
    config = topic.config
    consumer = topic.reader("read_uncommitted")
    opened: dict[int, list[str]] = {p: [] for p in hanging}
    try:
        consumer.assign([TopicPartition(config.topic, p, lso) for p, (lso, _) in hanging.items()])
        left = set(hanging)
        limit = deadline if deadline is not None else time.monotonic() + CATCH_UP_IDLE
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
