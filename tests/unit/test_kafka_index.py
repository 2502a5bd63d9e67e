"""The Kafka store's local index on its own (no broker): the offsets move with the events that
are indexed, in the same statement, so the writer needs no transaction around a batch."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from core.eventsourcing.schema import open_connection
from core.records import EventRecord
from plugins.kafka import index
from tests.support import event_record


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_connection(tmp_path / "index.db", synchronous="NORMAL", writer=True)
    connection.executescript(index.INDEX_DDL)
    yield connection
    connection.close()


def placed(stream_id: str, version: int, offset: int) -> EventRecord:
    """A record as the writer indexes it: at ``offset`` of its partition (position offset + 1)."""
    return msgspec.structs.replace(event_record(stream_id, version), position=offset + 1)


def test_indexing_a_batch_outside_a_transaction_moves_each_partitions_offset(
    connection: sqlite3.Connection,
) -> None:
    batch = [
        (placed("account-a", 1, 0), 0),
        (placed("account-a", 2, 1), 0),
        (placed("account-b", 1, 7), 2),
    ]
    index.insert_events(connection, batch)

    assert not connection.in_transaction  # committed by the statement itself
    assert index.next_offsets(connection) == {0: 2, 2: 8}
    assert [r.version for r in index.read_stream("account-a", 0, None, connection)] == [1, 2]


def test_offsets_never_move_back_and_a_repeated_event_changes_nothing(
    connection: sqlite3.Connection,
) -> None:
    first = placed("account-a", 1, 4)
    index.insert_events(connection, [(first, 1)])
    with connection:
        connection.execute("BEGIN")
        index.set_offsets(connection, {1: 9})  # a catch-up went past a transaction marker

    index.insert_events(connection, [(first, 1), (placed("account-b", 1, 2), 1)])

    assert index.next_offsets(connection) == {1: 9}
    assert index.stream_version("account-a", connection) == 1
    assert index.stream_version("account-b", connection) == 1
