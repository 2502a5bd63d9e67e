"""The local, disposable index of the events topic: ``<data_dir>/kafka-index.db``.

Kafka is the source of truth; this SQLite file only makes reads, stream versions and start-up
fast. It holds every committed event (with its partition and position), how far each partition
has been indexed (``offsets``), snapshots (a cache too) and which topic it indexes (``meta``).
Deleting the file is always safe: the next start rebuilds it from the topic. So
``synchronous=NORMAL``: a power cut can lose a tail of it, which the next start re-reads.

Each function runs on the connection it is given: the partition writers and the tailer write,
each on a connection of its own (SQLite lets one write at a time; ``busy_timeout`` makes the
others wait), and the reader pool reads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, Final

from core.eventsourcing.rows import (
    load_snapshot,
    read_command,
    read_stream,
    record_columns,
    save_snapshot,
)
from core.eventsourcing.schema import COMMAND_INDEX_DDL, json_columns, json_rows
from core.records import EventRecord

__all__ = [
    "HISTORY_COMPLETE",
    "INDEX_DDL",
    "clear",
    "complete_history",
    "history_missing",
    "history_pending",
    "insert_heads",
    "find_event_ids",
    "insert_events",
    "load_snapshot",
    "meta",
    "next_offsets",
    "read_command",
    "read_stream",
    "save_snapshot",
    "set_meta",
    "set_offsets",
    "start_history",
    "stream_version",
]

_TABLES_DDL: Final = """
CREATE TABLE IF NOT EXISTS events (
    stream_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    schema      INTEGER NOT NULL,
    event_id    TEXT    NOT NULL UNIQUE,
    occurred_at INTEGER NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    partition   INTEGER PRIMARY KEY,
    next_offset INTEGER NOT NULL
);
-- Each indexed event moves its partition's offset past itself, in the same statement: the
-- writer indexes a committed batch with one INSERT (no BEGIN/COMMIT around it), and a crash
-- can never leave an offset ahead of the events under it.
CREATE TRIGGER IF NOT EXISTS events_move_their_offsets AFTER INSERT ON events BEGIN
    INSERT INTO offsets (partition, next_offset) VALUES (NEW.partition, NEW.position)
    ON CONFLICT (partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset);
END;
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT    PRIMARY KEY,
    version   INTEGER NOT NULL,
    schema    INTEGER NOT NULL,
    state     BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Each stream's head as the heads topic gave it (a fresh node's start, head_start.py): its
-- version counts as the stream's even while its older events are not indexed yet.
CREATE TABLE IF NOT EXISTS heads (
    stream_id TEXT    PRIMARY KEY,
    version   INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    offset    INTEGER NOT NULL
) WITHOUT ROWID;
"""
INDEX_DDL: Final = _TABLES_DDL + COMMAND_INDEX_DDL

_INSERTED: Final = (
    "stream_id, version, type, schema, event_id, occurred_at, data, metadata, partition, position"
)
# OR IGNORE: a catch-up may meet events this process already indexed right after its commit.
_INSERT: Final = f"INSERT OR IGNORE INTO events ({_INSERTED}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# All the rows in one statement: executemany steps (and releases the GIL) once per row.
_INSERT_ALL: Final = (
    f"INSERT OR IGNORE INTO events ({_INSERTED}) SELECT {json_columns(_INSERTED)}"
    " FROM json_each(?) ORDER BY key"
)
_SET_OFFSET: Final = """
INSERT INTO offsets (partition, next_offset) VALUES (?, ?)
ON CONFLICT (partition) DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)
"""
_IDS_PER_QUERY: Final = 500
_SET_HEAD: Final = """
INSERT INTO heads (stream_id, version, partition, offset) VALUES (?, ?, ?, ?)
ON CONFLICT (stream_id) DO UPDATE
SET version = excluded.version, partition = excluded.partition, offset = excluded.offset
WHERE excluded.version > heads.version
"""
# meta ``history:<partition>``: the offset below which a partition started from the heads topic
# has not been read yet, until its history is read (then this value).
HISTORY_COMPLETE: Final = "complete"
_HISTORY: Final = "history:"


def _row(record: EventRecord, partition: int) -> tuple[Any, ...]:
    return (*record_columns(record), partition, record.position)


# -- writes (the store's writer thread) --------------------------------------------------------


def insert_events(connection: sqlite3.Connection, events: Iterable[tuple[EventRecord, int]]) -> int:
    """``(record, partition)`` pairs, records carrying their position (offset + 1). Each new
    event also moves its partition's next offset to at least its position (a trigger), so one
    batch of rows, inserted with one statement, needs no transaction around it. Returns how
    many were new (another thread may have indexed some already)."""
    rows = [_row(record, partition) for record, partition in events]
    if len(rows) > 1:
        return connection.execute(_INSERT_ALL, (json_rows(rows),)).rowcount
    if rows:
        return connection.execute(_INSERT, rows[0]).rowcount
    return 0


def set_offsets(connection: sqlite3.Connection, offsets: Mapping[int, int]) -> None:
    """Partition → the next offset to index (never moves back). For offsets past the last
    event (transaction markers, skipped records, end of partition): a catch-up sets them."""
    connection.executemany(_SET_OFFSET, list(offsets.items()))


def set_meta(connection: sqlite3.Connection, key: str, value: str) -> None:
    sql = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?"
    connection.execute(sql, (key, value, value))


def insert_heads(
    connection: sqlite3.Connection, partition: int, heads: Iterable[tuple[str, int, int]]
) -> None:
    """``(stream_id, version, offset)`` of ``partition``'s streams; a head never goes back."""
    connection.executemany(_SET_HEAD, [(s, v, partition, o) for s, v, o in heads])


def start_history(connection: sqlite3.Connection, partition: int, below: int) -> None:
    """``partition``'s events below offset ``below`` are not indexed yet (backfill.py)."""
    set_meta(connection, f"{_HISTORY}{partition}", str(below))


def complete_history(connection: sqlite3.Connection, partition: int) -> None:
    set_meta(connection, f"{_HISTORY}{partition}", HISTORY_COMPLETE)


def clear(connection: sqlite3.Connection) -> None:
    """Forget everything: the index belonged to another topic."""
    for table in ("events", "offsets", "snapshots", "meta", "heads"):
        connection.execute(f"DELETE FROM {table}")


# -- reads (any thread, any connection) ------------------------------------------------------


def meta(connection: sqlite3.Connection, key: str) -> str | None:
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def next_offsets(connection: sqlite3.Connection) -> dict[int, int]:
    return {p: o for p, o in connection.execute("SELECT partition, next_offset FROM offsets")}


def find_event_ids(connection: sqlite3.Connection, event_ids: list[str]) -> set[str]:
    """Which of ``event_ids`` are already indexed."""
    found: set[str] = set()
    for start in range(0, len(event_ids), _IDS_PER_QUERY):  # under SQLite's variable limit
        chunk = event_ids[start : start + _IDS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT event_id FROM events WHERE event_id IN ({marks})"
        found.update(row[0] for row in connection.execute(sql, chunk))
    return found


def stream_version(stream_id: str, connection: sqlite3.Connection) -> int:
    """The stream's last indexed event, or its head if that is newer."""
    sql = """SELECT max(
        coalesce((SELECT max(version) FROM events WHERE stream_id = ?1), 0),
        coalesce((SELECT version FROM heads WHERE stream_id = ?1), 0))"""
    found: int = connection.execute(sql, (stream_id,)).fetchone()[0]
    return found


def history_pending(connection: sqlite3.Connection) -> dict[int, int]:
    """Partition → the offset below which its history is still to be read."""
    sql = "SELECT key, value FROM meta WHERE key LIKE 'history:%' AND value != ?"
    rows = connection.execute(sql, (HISTORY_COMPLETE,))
    return {int(key.removeprefix(_HISTORY)): int(value) for key, value in rows}


def history_missing(stream_id: str, after_version: int, connection: sqlite3.Connection) -> bool:
    """True when some of the stream's events after ``after_version`` are not indexed because
    its partition started from the heads topic and its history is still being read."""
    sql = """SELECT heads.version FROM heads JOIN meta ON meta.key = ?2 || heads.partition
        WHERE heads.stream_id = ?1 AND meta.value != ?3"""
    row = connection.execute(sql, (stream_id, _HISTORY, HISTORY_COMPLETE)).fetchone()
    if row is None:
        return False
    version = stream_version(stream_id, connection)
    sql = "SELECT count(*) FROM events WHERE stream_id = ? AND version > ?"
    (indexed,) = connection.execute(sql, (stream_id, after_version)).fetchone()
    return int(indexed) < version - after_version
