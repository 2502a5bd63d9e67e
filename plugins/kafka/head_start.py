"""A fresh node's start from the stream-heads topic (heads.py): the streams' latest states
instead of the whole history.

For each partition that the index holds nothing of, when ``<topic>.heads`` has a watermark W
for it: the heads partition is read to its end (``read_committed``, the last record per key),
each stream's head goes into the index (its version in ``heads``, its state as a snapshot at
that very version), and the partition's next offset becomes R = min(W, the ``replay_from`` of
every head without a state). The catch-up then reads only the events from R on. What lies
below R is read later, in the background (backfill.py); ``meta`` says so until then. Without a
heads topic, or without a watermark for the partition (a topic written before heads existed),
nothing happens here and the whole partition is read as before.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from typing import Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)

from core.records import Snapshot
from plugins.kafka import index
from plugins.kafka.errors import kafka_unavailable
from plugins.kafka.heads import WATERMARK_KEY, StreamHead, decode_head, decode_watermark
from plugins.kafka.read_to_end import read_to_end
from plugins.kafka.topic import ADMIN_TIMEOUT, KafkaTopic

__all__ = ["Heads", "read_heads", "start_from_heads"]

log = logging.getLogger(__name__)

_IDLE: Final = 10.0  # a read of the heads that receives nothing for this long gives up


class Heads:
    """One heads partition as read: each stream's last head, and the last watermark."""

    def __init__(self) -> None:
        self.streams: dict[str, StreamHead] = {}
        self.watermark: int | None = None

    def take(self, key: bytes, value: bytes | None) -> None:
        if key == WATERMARK_KEY:
            watermark = decode_watermark(value)
            if watermark is not None:
                self.watermark = watermark.next_offset
            return
        stream_id = key.decode()
        head = decode_head(value)
        if head is None:  # a tombstone, or not a head
            self.streams.pop(stream_id, None)
        else:
            self.streams[stream_id] = head

    def replay_start(self) -> int | None:
        """R: where the events must be read from; None without a watermark."""
        if self.watermark is None:
            return None
        start = self.watermark
        for head in self.streams.values():
            if head.state is None:
                start = min(start, head.replay_from or 0)
        return start


def start_from_heads(
    topic: KafkaTopic,
    connection: sqlite3.Connection,
    partitions: Sequence[int],
    deadline: float | None,
) -> dict[int, int]:
    """Start the partitions the index holds nothing of from their heads, where there are any;
    returns each such partition's R (its next offset now)."""
    stored = index.next_offsets(connection)
    fresh = [p for p in partitions if stored.get(p, 0) == 0]
    if not fresh or not _heads_topic_exists(topic):
        return {}
    read = read_heads(topic, fresh, deadline)
    started: dict[int, int] = {}
    try:
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            stored = index.next_offsets(connection)  # another thread may have started it
            for partition, heads in read.items():
                start = heads.replay_start()
                if start is None or start <= 0 or stored.get(partition, 0) > 0:
                    continue
                _insert(connection, partition, heads)
                index.set_offsets(connection, {partition: start})
                index.start_history(connection, partition, start)
                started[partition] = start
    except sqlite3.Error as error:
        raise kafka_unavailable(f"cannot write {topic.config.index_path}", error) from error
    for partition, start in sorted(started.items()):
        log.info(
            "%s[%d] started from %d stream heads; events read from offset %d",
            topic.config.topic,
            partition,
            len(read[partition].streams),
            start,
        )
    return started


def _insert(connection: sqlite3.Connection, partition: int, heads: Heads) -> None:
    streams = heads.streams.items()
    index.insert_heads(connection, partition, [(s, h.version, h.offset) for s, h in streams])
    for stream_id, head in streams:
        if head.state is not None:
            snapshot = Snapshot(stream_id, head.version, head.schema, head.state)
            index.save_snapshot(snapshot, connection)


def _heads_topic_exists(topic: KafkaTopic) -> bool:
    """True when ``<topic>.heads`` exists with the events topic's partition count."""
    admin = topic.admin
    name = topic.config.heads_topic
    if admin is None:
        raise kafka_unavailable("the Kafka admin client is not open")
    # DescribeTopics, not a metadata request: that one may create the topic on a broker with
    # auto.create.topics.enable.
    future = admin.describe_topics(TopicCollection([name]), request_timeout=ADMIN_TIMEOUT)[name]
    try:
        described = future.result(ADMIN_TIMEOUT)
    except KafkaException as error:
        if error.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return False
        raise kafka_unavailable(f"cannot describe topic {name}", error) from error
    except Exception as error:  # concurrent.futures.TimeoutError
        raise kafka_unavailable(f"cannot describe topic {name}", error) from error
    if len(described.partitions) != topic.partitions:
        log.warning("%s does not have %d partitions: not used", name, topic.partitions)
        return False
    return True


def read_heads(
    topic: KafkaTopic, partitions: Sequence[int], deadline: float | None
) -> dict[int, Heads]:
    """Each heads partition of ``partitions`` read to its last stable offset."""
    name = topic.config.heads_topic
    ends = topic.ends(IsolationLevel.READ_COMMITTED, deadline, partitions, name=name)
    read = {p: Heads() for p in partitions}
    consumer = topic.reader("read_committed")
    try:
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in partitions])
        batches = read_to_end(
            consumer,
            name,
            partitions,
            what=f"reading {name}",
            deadline=deadline,
            idle=_IDLE,
            batch_size=topic.config.batch_size,
            ends=ends,
            at_end=[p for p in partitions if ends[p] <= 0],
        )
        for batch in batches:
            for message in batch:
                key = message.key()
                if key is not None:
                    read[message.partition() or 0].take(key, message.value())
    except KafkaException as error:
        raise kafka_unavailable(f"cannot read {name}", error) from error
    finally:
        with contextlib.suppress(Exception):
            consumer.close()
    return read
