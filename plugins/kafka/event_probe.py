"""Which events a partition of the events topic holds at given offsets, read ``read_committed``
from the first of them to the last: a take-over's check of the stream heads below the history
its index has not read yet (head_writes.py). Those are the heads of one transaction, so the span
read is usually that transaction's events."""

from __future__ import annotations

import time
from collections.abc import Collection

import msgspec

from core.records import decode_record
from plugins.kafka.errors import remaining
from plugins.kafka.span import committed_span
from plugins.kafka.topic import KafkaTopic

__all__ = ["events_at"]


def events_at(
    topic: KafkaTopic, partition: int, offsets: Collection[int], deadline: float | None
) -> dict[int, tuple[str, int]]:
    """Offset → (stream id, version) of the committed event there, for each of ``offsets``
    that holds one (an aborted record is not read)."""
    if not offsets:
        return {}
    limit = time.monotonic() + remaining(deadline)
    span = committed_span(
        topic, topic.config.topic, partition, min(offsets), max(offsets) + 1, limit
    )
    found: dict[int, tuple[str, int]] = {}
    for message in span:
        offset = message.offset() or 0
        if offset in offsets:
            try:
                record = decode_record(message.value() or b"")
            except msgspec.DecodeError:
                continue  # not an event
            found[offset] = (record.stream_id, record.version)
    return found
