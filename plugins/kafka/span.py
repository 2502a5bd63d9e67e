"""The committed records of one partition at offsets [start, stop), read ``read_committed`` with
a consumer of their own (up to the partition's end, if that comes first)."""

from __future__ import annotations

from collections.abc import Iterator

from confluent_kafka import Message, TopicPartition

from plugins.kafka.read_to_end import read_to_end
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
        batches = read_to_end(
            consumer,
            name,
            [partition],
            what=f"reading {name}",
            deadline=limit,
            idle=None,
            batch_size=1000,
            first_end=True,
        )
        for batch in batches:
            for message in batch:
                if (message.offset() or 0) >= stop:
                    return
                yield message
    finally:
        consumer.close()
