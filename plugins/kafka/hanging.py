"""Ending a transaction of ours that a broker restart left open on a partition.

A broker restarted in the middle of a commit or an abort may skip the marker of a partition
whose leader it does not know yet (it takes it for deleted) and call the transaction complete:
that partition keeps it open for good, and every read_committed reader (the catch-up, the
projections) stops at its first record. Only a marker of this ``transactional.id`` ends it.
After ``init_transactions`` nothing of ours is open, and nobody else writes the partition (its
one transactional id is ours), so a partition whose committed end (LSO) is short of its end
holds such a transaction. None of its appends was acknowledged: an append is answered "stored"
only once its partition shows the commit marker (transactions.py). So a transaction that writes
an empty record (readers skip it: not an event) into such partitions, and aborts, ends them;
their appends were answered "none written" or "may or may not", and a retry writes them again.
The same goes for the partitions of the same numbers in the stream-heads topic, which the same
transactions write (there the empty record has the watermark's key: a compacted topic refuses
a record without one)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import IsolationLevel, KafkaException, Producer

from plugins.kafka.delivery import Delivery
from plugins.kafka.errors import kafka_error, kafka_unavailable, remaining
from plugins.kafka.heads import WATERMARK_KEY
from plugins.kafka.topic import KafkaTopic

__all__ = ["finish_hanging"]

log = logging.getLogger(__name__)


def finish_hanging(
    producer: Producer,
    topic: KafkaTopic,
    deadline: float | None,
    partitions: Sequence[int] | None = None,
) -> None:
    """Abort every transaction of ours that one of ``partitions`` (all by default: the ones
    ``producer`` writes), in the events topic or the heads topic, still holds open (``producer``
    has just initialised its transactions), and wait until the partitions show it."""
    numbers = range(topic.partitions) if partitions is None else partitions
    config = topic.config
    among = [(t, p) for p in numbers for t in (config.topic, config.heads_topic)]
    hanging = _hanging(topic, deadline, among)
    if not hanging:
        return
    log.warning("%s hold a transaction left open; aborting it", sorted(hanging))
    _abort_open(producer, topic, sorted(hanging), deadline)
    # The markers are written after the transaction ends: wait for them.
    while _hanging(topic, deadline, sorted(hanging)):
        if deadline is not None and time.monotonic() > deadline:
            raise kafka_unavailable(f"{sorted(hanging)} stay open")
        time.sleep(0.05)


def _abort_open(
    producer: Producer, topic: KafkaTopic, partitions: list[tuple[str, int]], deadline: float | None
) -> None:
    """One transaction with an empty record in each partition, aborted: its marker ends what
    the partition holds open."""
    producer.begin_transaction()
    deliveries = [Delivery() for _ in partitions]
    heads = topic.config.heads_topic
    for (name, partition), delivery in zip(partitions, deliveries, strict=True):
        key = WATERMARK_KEY if name == heads else None
        producer.produce(name, partition=partition, key=key, on_delivery=delivery)
    if producer.flush(remaining(deadline)) or not all(d.placed for d in deliveries):
        raise kafka_unavailable("Kafka did not take the records that end an open transaction")
    while True:
        try:
            producer.abort_transaction(remaining(deadline))
            return
        except KafkaException as error:
            failure = kafka_error(error)
            late = deadline is not None and time.monotonic() > deadline
            if failure is None or not failure.retriable() or late:
                raise


def _hanging(
    topic: KafkaTopic, deadline: float | None, among: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], tuple[int, int]]:
    """The (topic, partition) pairs whose last stable offset is short of their end: (LSO, end)
    each."""
    stable = topic.offsets(IsolationLevel.READ_COMMITTED, deadline, among)
    end = topic.offsets(IsolationLevel.READ_UNCOMMITTED, deadline, among)
    return {tp: (stable[tp], end[tp]) for tp in stable if stable[tp] < end[tp]}
