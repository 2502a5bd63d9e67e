"""A partition writer's side of the stream-heads topic (heads.py).

Each transaction of the writer, once its events are flushed (their offsets known), writes into
the heads partition of the same number one ``StreamHead`` per stream it appends to, then a
``Watermark`` past its last event; the commit makes them visible with the events.

``covered`` is the last watermark the writer knows committed. A commit whose outcome is unknown
may have ended with diverging markers: a broker restart skipped one partition's marker, and the
producer's next start aborted what that partition held open (hanging.py). Its events may then be
stored and their heads not, or the reverse. So after one, the writer's next transaction first
writes again the head of every stream with an event at an offset at or past ``covered`` in the
local index, and of every stream that commit wrote to (one left without events gets a
tombstone). A repaired head's state is the local snapshot when it is at the head's version;
otherwise ``replay_from`` says where the stream's events must be read from.

A take-over does the same, in a transaction of its own, as the previous owner may have died in
that state. It reads the latest committed watermark and the heads that the partition's last
committed transaction wrote (last_heads.py). Events committed without their heads lie past that
watermark (they are later than every event whose heads committed), so their streams are
repaired from it (no watermark: from 0, every stream of the partition). Heads committed without
their events are found by checking that transaction's heads against the index, which the
take-over has read to the partition's end: a head without the event at its version and offset,
or a tombstone for a stream with events, is written again from the index, and ``covered`` goes
back to the watermark that transaction started from.

Only the last committed transaction can hold such a head. A head lacks its events only when its
own transaction's events were aborted (a repair comes from an index caught up after every
earlier transaction ended), and then its writer heard no confirmed commit (that waits for both
markers): the stream stays in its repairs, and every later transaction of that writer whose
heads commit writes its head again, until one is confirmed. A later owner's take-over checks the
last transaction first. So a head that a later committed transaction did not write again is in
the last one. An index started from the heads topic whose history is not read yet
(head_start.py) checks a head below that history in the topic (event_probe.py); one that finds
a head contradicted fails the take-over (it is tried again) until its history is read, as only
a whole index says what the head should be."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec
from confluent_kafka import IsolationLevel, Producer

from plugins.kafka import index
from plugins.kafka.delivery import Delivery
from plugins.kafka.errors import kafka_unavailable, remaining
from plugins.kafka.event_probe import events_at
from plugins.kafka.heads import (
    WATERMARK_KEY,
    StreamHead,
    Watermark,
    decode_head,
    encode_head,
    encode_watermark,
)
from plugins.kafka.last_heads import LastTransaction, last_transaction
from plugins.kafka.local_index import LocalIndex
from plugins.kafka.requests import Append
from plugins.kafka.topic import KafkaTopic

__all__ = ["HeadWrites"]

log = logging.getLogger(__name__)

# The latest event of each stream with one at ``position > ?`` in a partition, the local
# snapshot not past it, and the offset of the stream's first event after that snapshot.
_SINCE: Final = """
SELECT l.stream_id, l.version, l.position - 1, s.version, s.schema, s.state,
    (SELECT e.position - 1 FROM events e
     WHERE e.stream_id = l.stream_id AND e.version > coalesce(s.version, 0)
     ORDER BY e.version LIMIT 1)
FROM (SELECT stream_id, max(version) AS version, max(position) AS position
      FROM events WHERE partition = ? AND position > ? GROUP BY stream_id) AS l
LEFT JOIN snapshots s ON s.stream_id = l.stream_id AND s.version <= l.version
"""
# The same for one stream: its latest event, snapshot and first event after it.
_ONE: Final = """
SELECT l.stream_id, l.version, l.position - 1, s.version, s.schema, s.state,
    (SELECT e.position - 1 FROM events e
     WHERE e.stream_id = l.stream_id AND e.version > coalesce(s.version, 0)
     ORDER BY e.version LIMIT 1)
FROM (SELECT ?1 AS stream_id, max(version) AS version, max(position) AS position
      FROM events WHERE stream_id = ?1) AS l
LEFT JOIN snapshots s ON s.stream_id = l.stream_id AND s.version <= l.version
"""
# The stream's event at a head's version and offset (position = offset + 1); any event of it.
_AT: Final = "SELECT 1 FROM events WHERE stream_id = ? AND version = ? AND position = ?"
_ANY: Final = "SELECT 1 FROM events WHERE stream_id = ? LIMIT 1"
_FORGET: Final = (
    "DELETE FROM heads WHERE stream_id = ?",
    "DELETE FROM snapshots WHERE stream_id = ?",
)
# For a head at ``?2`` without a state: the snapshot not past it, the first event after that.
_REPLAY: Final = """
SELECT s.version, s.schema, s.state,
    (SELECT e.position - 1 FROM events e
     WHERE e.stream_id = ?1 AND e.version > coalesce(s.version, 0)
     ORDER BY e.version LIMIT 1)
FROM (SELECT ?1 AS stream_id) AS q
LEFT JOIN snapshots s ON s.stream_id = q.stream_id AND s.version <= ?2
"""

Record = tuple[bytes, bytes | None]  # key, value (None: a tombstone)
Row = tuple[str, int | None, int | None, int | None, int | None, bytes | None, int | None]


def _from_row(row: Row) -> Record:
    """A repair head from the index: the stream's latest event, its snapshot when it is at
    that version, else where to replay from (no event at all: a tombstone)."""
    stream_id, version, offset, at, schema, state, first = row
    if version is None or offset is None:
        return stream_id.encode(), None
    if at == version and state is not None:
        head = StreamHead(version, offset, schema or 0, msgspec.Raw(bytes(state)))
    else:
        head = StreamHead(version, offset, replay_from=first)
    return stream_id.encode(), encode_head(head)


class HeadWrites:
    """What one partition writer writes into the heads partition of its number."""

    def __init__(self, topic: KafkaTopic, local: LocalIndex, partition: int) -> None:
        self._topic = topic
        self._local = local
        self._partition = partition
        self.name = topic.config.heads_topic
        self.covered = 0  # a watermark known committed
        self.repair = True  # heads may lack events at offsets >= covered
        self._suspects: set[str] = set()  # streams of commits with an unknown outcome

    def take_over(self, producer: Producer, deadline: float | None) -> None:
        """After the partition is read to its end: the latest committed watermark; the heads
        past it, and those of the last transaction that the index contradicts, written again
        (in a transaction of their own) if there are any."""
        self._resume(last_transaction(self._topic, self._partition, deadline), deadline)
        repairs = self._repairs(set())
        if not repairs:
            self.repair = False
            return
        ends = index.next_offsets(self._local.connection())
        watermark = max(ends.get(self._partition, 0), self.covered)
        producer.begin_transaction()
        try:
            deliveries = self._produce(producer, [*repairs, _watermark(watermark)])
            if producer.flush(remaining(deadline)) or not all(d.placed for d in deliveries):
                raise kafka_unavailable("Kafka did not take the repaired stream heads")
        except BaseException:
            producer.abort_transaction(remaining(deadline))
            raise
        producer.commit_transaction(remaining(deadline))
        last = max(d.offset for d in deliveries)
        limit = time.monotonic() + remaining(deadline)
        while self._stable(limit) <= last:
            if time.monotonic() > limit:  # the next take-over repairs them again
                raise kafka_unavailable(f"{self.name} does not show the repaired heads")
            time.sleep(0.01)
        self.committed(watermark)

    def _resume(self, last: LastTransaction, deadline: float | None) -> None:
        """``covered``: the latest committed watermark; but the one the last transaction
        started from when the index contradicts heads that transaction wrote, and those
        streams repaired too."""
        self.covered = last.watermark
        self.repair = True
        contradicted = self._contradicted(last.heads, deadline)
        if contradicted:
            self._forget(contradicted)
            self.covered = min(self.covered, last.previous)
            self._suspects.update(contradicted)

    @property
    def key(self) -> tuple[str, int]:
        return self.name, self._partition

    def _stable(self, limit: float) -> int:
        """The heads partition's last stable offset."""
        return self._topic.offsets(IsolationLevel.READ_COMMITTED, limit, [self.key])[self.key]

    def register(self, producer: Producer) -> list[Delivery]:
        """Before the events: the last watermark known committed, written again (it still
        holds), so that the heads partition joins the transaction (``AddPartitionsToTxn``)
        while the events are on their way, not after them."""
        return self._produce(producer, [_watermark(self.covered)])

    def produce(
        self, producer: Producer, appends: Sequence[Append], deliveries: Sequence[list[Delivery]]
    ) -> tuple[list[Delivery], int]:
        """Into the open transaction, after its events were flushed: the repairs due, each
        stream's head, the watermark. Their deliveries, and the watermark."""
        last: dict[str, Append] = {}
        offsets: dict[str, list[tuple[int, int]]] = {}  # each stream's (version, offset)
        for append, placed in zip(appends, deliveries, strict=True):
            last[append.stream_id] = append
            offsets.setdefault(append.stream_id, []).extend(
                (r.version, d.offset) for r, d in zip(append.records, placed, strict=True)
            )
        records = self._repairs(set(last)) if self.repair else []
        for stream_id, append in last.items():
            head = self._own(append, offsets[stream_id])
            records.append((stream_id.encode(), encode_head(head)))
        watermark = max(d.offset for placed in deliveries for d in placed) + 1
        records.append(_watermark(watermark))
        return self._produce(producer, records), watermark

    def committed(self, watermark: int) -> None:
        """The transaction that wrote ``watermark`` is committed, in both partitions."""
        self.covered = watermark
        self.repair = False
        self._suspects.clear()

    def unknown(self, streams: Iterable[str]) -> None:
        """A commit (of appends to ``streams``) whose outcome is not known."""
        self.repair = True
        self._suspects.update(streams)

    def _own(self, append: Append, offsets: list[tuple[int, int]]) -> StreamHead:
        """The head of a stream after its last append of the batch (``offsets``: the
        stream's (version, offset) pairs in the batch)."""
        version, offset = offsets[-1]
        head = append.head
        if head is not None and head.version == version:
            return StreamHead(version, offset, head.schema, head.state)
        at, schema, state, first = (
            self._local.connection().execute(_REPLAY, (append.stream_id, version)).fetchone()
        )
        if at == version and state is not None:
            return StreamHead(version, offset, schema, msgspec.Raw(bytes(state)))
        if first is None:  # the stream's events after the snapshot are all in this batch
            first = next(o for v, o in offsets if v > (at or 0))
        return StreamHead(version, offset, replay_from=first)

    def _contradicted(self, heads: dict[bytes, bytes | None], deadline: float | None) -> set[str]:
        """The streams of ``heads`` (the last transaction's) that the events contradict: a head
        without the event at its version and offset (a divergent commit aborted its events),
        or a tombstone for a stream with events in the index. A head below the history the
        index has not read yet (it started from the heads topic) is checked in the topic."""
        connection = self._local.connection()
        unread = index.history_pending(connection).get(self._partition, 0)
        below: dict[str, StreamHead] = {}
        found: set[str] = set()
        for key, value in heads.items():
            stream_id, head = key.decode(), decode_head(value)
            if head is None:
                if connection.execute(_ANY, (stream_id,)).fetchone() is not None:
                    found.add(stream_id)
            elif head.offset < unread:
                below[stream_id] = head
            elif (
                connection.execute(_AT, (stream_id, head.version, head.offset + 1)).fetchone()
                is None
            ):
                found.add(stream_id)
        held = events_at(self._topic, self._partition, {h.offset for h in below.values()}, deadline)
        found.update(s for s, h in below.items() if held.get(h.offset) != (s, h.version))
        return found

    def _forget(self, streams: set[str]) -> None:
        """Before the heads of ``streams`` are written again from the index: forget the heads
        and states this index holds for them (loaded from the heads topic, or from those
        contradicted heads: the snapshots are a cache). Only an index with its whole history
        can say what they should be: until it has read it, the take-over fails (tried again)."""
        log.warning(
            "%s[%d]: %d stream heads contradict the events; written again from the index",
            self.name,
            self._partition,
            len(streams),
        )
        connection = self._local.connection()
        if self._partition in index.history_pending(connection):
            raise kafka_unavailable(f"{self.name}[{self._partition}]: its history is not read")
        with connection:
            for sql in _FORGET:
                connection.executemany(sql, [(s,) for s in sorted(streams)])
        self._local.mark_stale()

    def _repairs(self, skip: set[str]) -> list[Record]:
        """Heads again for the streams with events at offsets >= covered in the index, and for
        the streams of unknown commits; not for ``skip`` (this transaction writes theirs)."""
        connection = self._local.connection()
        rows: list[Row] = connection.execute(_SINCE, (self._partition, self.covered)).fetchall()
        seen = {row[0] for row in rows}
        for stream_id in self._suspects - seen:
            rows.append(connection.execute(_ONE, (stream_id,)).fetchone())
        return [_from_row(row) for row in rows if row[0] not in skip]

    def _produce(self, producer: Producer, records: list[Record]) -> list[Delivery]:
        deliveries = []
        for key, value in records:
            delivery = Delivery()
            producer.produce(
                self.name, partition=self._partition, key=key, value=value, on_delivery=delivery
            )
            deliveries.append(delivery)
        return deliveries


def _watermark(next_offset: int) -> Record:
    return WATERMARK_KEY, encode_watermark(Watermark(next_offset))
