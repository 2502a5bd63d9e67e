"""Catching the local index up with the topic: read every partition from the offset the index
holds to its last stable offset (``read_committed``) and index what is there.

It runs at start-up, so that reads are served at once, and again whenever the writer can no
longer trust its index to hold what the topic holds (a new producer, a failed index write). A
partition the index holds nothing of starts from the stream-heads topic where it can
(head_start.py), and is then read from there."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Final

import msgspec
from confluent_kafka import OFFSET_BEGINNING, IsolationLevel, KafkaException, TopicPartition

from core.records import EventRecord, decode_record
from plugins.kafka import index
from plugins.kafka.errors import kafka_unavailable
from plugins.kafka.head_start import start_from_heads
from plugins.kafka.read_to_end import read_to_end
from plugins.kafka.topic import KafkaTopic

__all__ = ["CATCH_UP_IDLE", "catch_up"]

log = logging.getLogger(__name__)

CATCH_UP_IDLE: Final = 10.0  # a catch-up that receives nothing for this long gives up


def catch_up(
    topic: KafkaTopic,
    connection: sqlite3.Connection,
    deadline: float | None,
    indexed: Callable[[int], None],
    partitions: Sequence[int] | None = None,
) -> None:
    """Index the tail of ``partitions`` (all by default); ``indexed(events)`` after each batch
    the index committed, with the events it did not hold yet."""
    config = topic.config
    among = list(range(topic.partitions)) if partitions is None else list(partitions)
    start_from_heads(topic, connection, among, deadline)
    consumer = topic.reader("read_committed")
    try:
        stored = index.next_offsets(connection)
        # A partition that holds a transaction open (see hanging.py) shows a reader nothing
        # past its last stable offset, and reports no end either when the index is already
        # past it (its acknowledged records are indexed): nothing to read there.
        stable = topic.ends(IsolationLevel.READ_COMMITTED, deadline, among)
        consumer.assign(
            [TopicPartition(config.topic, p, stored.get(p, OFFSET_BEGINNING)) for p in among]
        )
        at_end = {p for p, offset in stable.items() if stored.get(p, 0) >= offset}
        batches = read_to_end(
            consumer,
            config.topic,
            among,
            what=f"catching up with {config.topic}",
            deadline=deadline,
            idle=CATCH_UP_IDLE,
            batch_size=config.batch_size,
            at_end=at_end,
        )
        for batch in batches:
            events: list[tuple[EventRecord, int]] = []
            for message in batch:
                partition, offset = message.partition() or 0, message.offset() or 0
                try:
                    record = decode_record(message.value() or b"")
                except msgspec.DecodeError:
                    log.warning(
                        "%s[%d]@%d is not an event; skipped", config.topic, partition, offset
                    )
                    continue
                events.append((msgspec.structs.replace(record, position=offset + 1), partition))
            with connection:
                # IMMEDIATE: the write lock first (other partition writers and the tailer write
                # this file too; busy_timeout waits for them), never a read upgraded to a write.
                connection.execute("BEGIN IMMEDIATE")
                inserted = index.insert_events(connection, events)
                index.set_offsets(connection, batch.next_offsets)
            indexed(inserted)
    except KafkaException as error:
        raise kafka_unavailable(f"cannot read {config.topic}", error) from error
    except sqlite3.Error as error:
        raise kafka_unavailable(f"cannot write {config.index_path}", error) from error
    finally:
        with contextlib.suppress(Exception):
            consumer.close()
