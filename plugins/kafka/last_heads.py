"""The end of one stream-heads partition as a take-over reads it: the latest committed
watermark, and what the last committed transaction wrote before it.

Every committed transaction of the heads partition ends with a ``Watermark``, and a writer's
transaction also starts with one (the last watermark its writer knew committed, written again:
``HeadWrites.register``). So in a ``read_committed`` read the records after the last watermark
but one are the last transaction's stream heads, and that watermark but one is the one its
writer started from. Compaction may have removed that earlier watermark (a later one shares its
key): the read then goes back to the one before, or to the start of the partition, and returns
more heads than the last transaction wrote, never fewer. The partition is read backwards in
growing spans until two watermarks are in the span."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

from confluent_kafka import IsolationLevel

from plugins.kafka.errors import remaining
from plugins.kafka.heads import WATERMARK_KEY, decode_watermark
from plugins.kafka.span import committed_span
from plugins.kafka.topic import KafkaTopic

__all__ = ["LastTransaction", "last_transaction"]

_LOOK_BACK: Final = 500  # offsets of the heads partition read first

Records = list[tuple[bytes, bytes | None]]  # key, value, in offset order


@dataclass(frozen=True, slots=True)
class LastTransaction:
    """``watermark``: the latest committed one (0: none). ``previous``: the watermark before it
    (0: none), which the last transaction's writer knew committed. ``heads``: each stream key
    written after ``previous``, with its last value there (None: a tombstone)."""

    watermark: int = 0
    previous: int = 0
    heads: dict[bytes, bytes | None] = field(default_factory=dict)


def last_transaction(topic: KafkaTopic, partition: int, deadline: float | None) -> LastTransaction:
    """The heads partition's latest committed watermark and its last transaction's heads."""
    name = topic.config.heads_topic
    stop = topic.offsets(IsolationLevel.READ_COMMITTED, deadline, [(name, partition)])
    end = stop[(name, partition)]
    limit = time.monotonic() + remaining(deadline)
    start, span = end, _LOOK_BACK
    while start > 0:
        start = max(0, end - span)
        records = _read(topic, partition, start, end, limit)
        marks = _marks(records)
        if len(marks) >= 2 or (marks and start == 0):
            after, previous = marks[-2] if len(marks) >= 2 else (-1, 0)
            heads = {k: v for k, v in records[after + 1 :] if k != WATERMARK_KEY}
            return LastTransaction(marks[-1][1], previous, heads)
        span *= 2
    return LastTransaction()


def _marks(records: Records) -> list[tuple[int, int]]:
    """The (index, next offset) of each watermark among ``records``."""
    marks = []
    for n, (key, value) in enumerate(records):
        watermark = decode_watermark(value) if key == WATERMARK_KEY else None
        if watermark is not None:
            marks.append((n, watermark.next_offset))
    return marks


def _read(topic: KafkaTopic, partition: int, start: int, stop: int, limit: float) -> Records:
    """The keyed records at offsets [start, stop) of the heads partition (read_committed)."""
    name = topic.config.heads_topic
    span = committed_span(topic, name, partition, start, stop, limit)
    return [(key, m.value()) for m in span if (key := m.key()) is not None]
