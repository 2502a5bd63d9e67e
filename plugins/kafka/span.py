"""The committed records of one partition at offsets [start, stop), read ``read_committed`` with
a consumer of their own (up to the partition's end, if that comes first)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from plugins.kafka.errors import kafka_unavailable
from plugins.kafka.topic import KafkaTopic

__all__ = ["committed_span"]


def committed_span(
    topic: KafkaTopic, name: str, partition: int, start: int, stop: int, limit: float
) -> Iterator[Message]:
    """The records of ``name``[``partition``] at offsets [start, stop), read until the
    ``time.monotonic()`` value ``limit``."""
    consumer = topic.reader("read_committed")
    try:
        consumer.assign([TopicPartition(name, partition, start)])
        while True:
            if time.monotonic() > limit:
                raise kafka_unavailable(f"reading {name} timed out")
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return
                    raise kafka_unavailable(f"cannot read {name}", KafkaException(error))
                if (message.offset() or 0) >= stop:
                    return
                yield message
    finally:
        consumer.close()
