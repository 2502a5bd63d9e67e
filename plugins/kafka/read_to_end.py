"""Reading assigned partitions to their end with a reader consumer (``KafkaTopic.reader``: it
reports each partition's end): the records come a batch (one ``consume``) at a time, until every
partition is at its end, within a deadline and an idle bound.

Where a partition's end lies is one of:

- its end-of-partition event (``ends`` None): a record after it, in the same batch or a later
  one, opens the partition again;
- the end offset the caller captured before the read (``ends``): an end-of-partition event or
  the consumer's position at or past it ends the partition for good. The position shows the end
  at once when the last record is followed by a transaction's marker (which a reader never
  receives), where the end-of-partition event waits for one more fetch.

With ``first_end``, the read stops at the end-of-partition event that brings the last
partition to its end, and the rest of that batch is not read; without, the batch is read
whole. The consumer stays the caller's: it assigns it, and closes it."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from plugins.kafka.errors import kafka_unavailable

__all__ = ["Batch", "read_to_end"]

_POLL: float = 0.2  # the longest one ``consume`` waits


@dataclass(slots=True)
class _Read:
    topic: str
    partitions: Collection[int]
    ends: Mapping[int, int] | None
    first_end: bool
    done: set[int]  # the partitions at their end

    @property
    def finished(self) -> bool:
        return len(self.done) >= len(self.partitions)


class Batch:
    """The messages of one ``consume``. Iterating gives its records in order, one at a time (a
    record's error raises where it lies); ``next_offsets`` then holds each partition's next
    offset after those read: past its last record, or the end its end-of-partition event
    reported if that is further."""

    def __init__(self, read: _Read, messages: list[Message]) -> None:
        self.next_offsets: dict[int, int] = {}
        self._records = self._read(read, messages)

    def __iter__(self) -> Iterator[Message]:
        return self._records

    def _read(self, read: _Read, messages: list[Message]) -> Iterator[Message]:
        for message in messages:
            partition, offset = message.partition() or 0, message.offset() or 0
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise kafka_unavailable(f"cannot read {read.topic}", KafkaException(error))
                self.next_offsets[partition] = max(self.next_offsets.get(partition, 0), offset)
                if read.ends is None or offset >= read.ends[partition]:
                    read.done.add(partition)
                if read.first_end and read.finished:
                    return
                continue
            if read.ends is None:
                read.done.discard(partition)
            self.next_offsets[partition] = offset + 1
            yield message


def read_to_end(
    consumer: Consumer,
    topic: str,
    partitions: Collection[int],
    *,
    what: str,
    deadline: float | None,
    idle: float | None,
    batch_size: int,
    ends: Mapping[int, int] | None = None,
    at_end: Iterable[int] = (),
    first_end: bool = False,
) -> Iterator[Batch]:
    """The batches ``consumer`` reads from ``topic``'s ``partitions`` (those of ``at_end``
    already at their end) until each is at its end; what the caller leaves unread of a batch is
    read before the next. Past the ``time.monotonic()`` value ``deadline``, or after ``idle``
    seconds without a message: ``StoreUnavailableError`` "``what`` timed out" / "``what``: no
    answer". A record's error is a ``StoreUnavailableError`` "cannot read ``topic``"; the
    consumer's own exceptions come out as they are."""
    read = _Read(topic, partitions, ends, first_end, set(at_end))
    last_progress = time.monotonic()
    while not read.finished:
        now = time.monotonic()
        if deadline is not None and now > deadline:
            raise kafka_unavailable(f"{what} timed out")
        if idle is not None and now - last_progress > idle:
            raise kafka_unavailable(f"{what}: no answer")
        messages = consumer.consume(num_messages=batch_size, timeout=_POLL)
        if messages:
            last_progress = time.monotonic()
            batch = Batch(read, messages)
            yield batch
            for _ in batch:  # what the caller left unread
                pass
        if ends is not None:
            waiting = [TopicPartition(topic, p) for p in partitions if p not in read.done]
            for position in consumer.position(waiting) if waiting else []:
                if position.offset >= ends[position.partition]:
                    read.done.add(position.partition)
