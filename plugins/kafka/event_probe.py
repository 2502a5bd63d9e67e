"""Which events a partition of the events topic holds at given offsets, read ``read_committed``
from the first of them to the last: a take-over's check of the stream heads below the history
its index has not read yet (head_writes.py). Those are the heads of one transaction, so the span
read is usually that transaction's events."""

from __future__ import annotations

import time
from collections.abc import Collection

import msgspec
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from core.records import decode_record
from plugins.kafka.errors import kafka_unavailable, remaining
from plugins.kafka.topic import KafkaTopic

__all__ = ["events_at"]


def events_at(
    topic: KafkaTopic, partition: int, offsets: Collection[int], deadline: float | None
) -> dict[int, tuple[str, int]]:
    """Offset → (stream id, version) of the committed event there, for each of ``offsets``
    that holds one (an aborted record is not read)."""
    if not offsets:
        return {}
    name, last = topic.config.topic, max(offsets)
    limit = time.monotonic() + remaining(deadline)
    found: dict[int, tuple[str, int]] = {}
    consumer = topic.reader("read_committed")
    try:
        consumer.assign([TopicPartition(name, partition, min(offsets))])
        while True:
            if time.monotonic() > limit:
                raise kafka_unavailable(f"reading {name} timed out")
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return found
                    raise kafka_unavailable(f"cannot read {name}", KafkaException(error))
                offset = message.offset() or 0
                if offset > last:
                    return found
                if offset in offsets:
                    try:
                        record = decode_record(message.value() or b"")
                    except msgspec.DecodeError:
                        continue  # not an event
                    found[offset] = (record.stream_id, record.version)
    finally:
        consumer.close()
