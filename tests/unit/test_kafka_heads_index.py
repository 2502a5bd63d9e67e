"""A start from the stream-heads topic, in the local index (no broker): the heads as read, where
the events must be read from, the versions they give, and which reads need the history."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import msgspec
import pytest

from core.records import EventRecord
from plugins.kafka import index
from plugins.kafka.head_start import Heads
from plugins.kafka.heads import WATERMARK_KEY, StreamHead, Watermark, encode_head, encode_watermark
from tests.support import event_record


@pytest.fixture
def connection() -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(":memory:", isolation_level=None)) as memory:
        memory.executescript(index.INDEX_DDL)
        yield memory


def placed(stream_id: str, version: int, offset: int) -> tuple[EventRecord, int]:
    return msgspec.structs.replace(event_record(stream_id, version), position=offset + 1), 0


def state(version: int) -> msgspec.Raw:
    return msgspec.Raw(b'{"version":%d}' % version)


def test_the_last_record_of_each_key_counts_and_a_tombstone_removes_a_head() -> None:
    heads = Heads()
    heads.take(b"a", encode_head(StreamHead(1, 0, 1, state(1))))
    heads.take(WATERMARK_KEY, encode_watermark(Watermark(1)))
    heads.take(b"a", encode_head(StreamHead(2, 5, 1, state(2))))
    heads.take(b"b", encode_head(StreamHead(1, 6, 1, state(1))))
    heads.take(b"b", None)
    heads.take(WATERMARK_KEY, encode_watermark(Watermark(7)))

    assert list(heads.streams) == ["a"]
    assert heads.streams["a"].version == 2
    assert heads.watermark == 7


def test_the_events_are_read_from_the_watermark_or_the_first_replay_before_it() -> None:
    heads = Heads()
    assert heads.replay_start() is None  # no watermark: a topic written before heads
    heads.take(b"a", encode_head(StreamHead(3, 40, 1, state(3))))
    heads.take(WATERMARK_KEY, encode_watermark(Watermark(50)))
    assert heads.replay_start() == 50
    heads.take(b"b", encode_head(StreamHead(2, 45, replay_from=30)))
    heads.take(b"c", encode_head(StreamHead(4, 48, replay_from=35)))
    assert heads.replay_start() == 30


def test_a_stream_s_version_is_its_head_s_until_newer_events_are_indexed(
    connection: sqlite3.Connection,
) -> None:
    index.insert_heads(connection, 0, [("a", 7, 20)])
    assert index.stream_version("a", connection) == 7
    index.insert_events(connection, [placed("a", 8, 30)])
    assert index.stream_version("a", connection) == 8
    index.insert_heads(connection, 0, [("a", 5, 10)])  # an older head changes nothing
    assert index.stream_version("a", connection) == 8


def test_only_the_reads_that_need_events_below_the_start_wait_for_the_history(
    connection: sqlite3.Connection,
) -> None:
    # "a": head at 7 (a state), events 8 and 9 read after R; "b": every event after R.
    index.insert_heads(connection, 0, [("a", 7, 20), ("b", 2, 26)])
    index.set_offsets(connection, {0: 25})
    index.start_history(connection, 0, 25)
    index.insert_events(connection, [placed("a", 8, 30), placed("a", 9, 31)])
    index.insert_events(connection, [placed("b", 1, 25), placed("b", 2, 26)])

    assert index.history_pending(connection) == {0: 25}
    assert index.history_missing("a", 0, connection)
    assert index.history_missing("a", 6, connection)
    assert not index.history_missing("a", 7, connection)
    assert not index.history_missing("b", 0, connection)
    assert not index.history_missing("c", 0, connection)  # no head: nothing is missing

    index.insert_events(connection, [placed("a", v, v) for v in range(1, 8)])
    index.complete_history(connection, 0)

    assert index.next_offsets(connection) == {0: 32}  # the history never moves it back
    assert index.history_pending(connection) == {}
    assert not index.history_missing("a", 0, connection)
