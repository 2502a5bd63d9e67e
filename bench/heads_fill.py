"""Filling a Kafka events topic together with its stream-heads topic, as the partition writers
write them: in each Kafka transaction, a batch of events, then each of its streams' head (the
state at its last event, or none and the offset to replay from) and each partition's watermark.

It writes straight to the topics with one transactional producer, for the benchmark of a fresh
node's start and the tests of it; the events are whatever records it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

import msgspec
from confluent_kafka import Producer

from core.records import EventRecord, encode_record
from plugins.kafka.config import KafkaConfig
from plugins.kafka.heads import (
    WATERMARK_KEY,
    StreamHead,
    Watermark,
    encode_head,
    encode_watermark,
)
from plugins.kafka.partitioner import partition_for

__all__ = ["StateOf", "fill_with_heads"]

# A stream's state after its records (schema, JSON), or None: the head then says to replay.
StateOf = Callable[[Sequence[EventRecord]], tuple[int, bytes] | None]
_TIMEOUT: Final = 30.0


def fill_with_heads(
    config: KafkaConfig,
    partitions: int,
    batches: Iterable[Sequence[Sequence[EventRecord]]],
    state_of: StateOf,
    *,
    heads: bool = True,
) -> dict[int, int]:
    """Each batch (a stream's records each, the stream's first records included) in one
    transaction, with its heads and watermarks unless ``heads`` is False. Returns each
    partition's watermark (the offset after its last event)."""
    producer = Producer(
        {
            "bootstrap.servers": config.bootstrap,
            "transactional.id": f"{config.topic}-fill",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    producer.init_transactions(_TIMEOUT)
    first_offsets: dict[str, int] = {}  # a stream's first event's offset (its replay start)
    watermarks: dict[int, int] = {}
    for batch in batches:
        producer.begin_transaction()
        offsets: dict[str, tuple[int, int]] = {}  # stream → (partition, last event's offset)

        def delivered(error: object, message: object) -> None:
            if error is not None:
                raise RuntimeError(f"a fill record was not delivered: {error}")

        placed: list[tuple[str, int, list[int]]] = []
        for records in batch:
            stream_id = records[0].stream_id
            partition = partition_for(stream_id, partitions)
            landed: list[int] = []
            placed.append((stream_id, partition, landed))
            for record in records:
                producer.produce(
                    config.topic,
                    partition=partition,
                    key=stream_id.encode(),
                    value=encode_record(record),
                    headers=[("type", record.type.encode())],
                    on_delivery=_landed(landed, delivered),
                )
        if producer.flush(_TIMEOUT):
            raise RuntimeError("the fill's events were not delivered")
        for (stream_id, partition, landed), records in zip(placed, batch, strict=True):
            first_offsets.setdefault(stream_id, min(landed))
            offsets[stream_id] = (partition, max(landed))
            watermarks[partition] = max(watermarks.get(partition, 0), max(landed) + 1)
            if heads:
                head = _head(records, max(landed), first_offsets[stream_id], state_of)
                producer.produce(
                    config.heads_topic, partition=partition, key=stream_id.encode(), value=head
                )
        if heads:
            for partition in {p for p, _ in offsets.values()}:
                mark = encode_watermark(Watermark(watermarks[partition]))
                producer.produce(
                    config.heads_topic, partition=partition, key=WATERMARK_KEY, value=mark
                )
        producer.commit_transaction(_TIMEOUT)
    return watermarks


def _landed(
    landed: list[int], delivered: Callable[[object, object], None]
) -> Callable[[object, object], None]:
    def report(error: object, message: object) -> None:
        delivered(error, message)
        landed.append(message.offset())  # type: ignore[attr-defined]

    return report


def _head(
    records: Sequence[EventRecord], offset: int, first_offset: int, state_of: StateOf
) -> bytes:
    state = state_of(records)
    version = records[-1].version
    if state is None:
        return encode_head(StreamHead(version, offset, replay_from=first_offset))
    schema, body = state
    return encode_head(StreamHead(version, offset, schema, msgspec.Raw(body)))
