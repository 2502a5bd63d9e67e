"""The event tables (the SQLite store's, whose command index the Kafka index shares), how
connections are opened, and how times and batches of rows are passed to SQLite.

Times are stored as integer microseconds since the Unix epoch, UTC: they compare and sort
correctly in SQL, and convert back exactly (no float on the way).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec

from core.config import ConfigError

__all__ = [
    "COMMAND_INDEX_DDL",
    "EVENTS_DDL",
    "REQUIRED_SQLITE",
    "SqliteVersionError",
    "from_micros",
    "json_columns",
    "json_rows",
    "open_connection",
    "require_sqlite",
    "to_micros",
]

# Every write is set-based: a batch's rows go in as one JSON array through ``json_each``, read
# with ``->>`` (SQLite 3.38; ``UPDATE ... FROM`` needs 3.33).
REQUIRED_SQLITE: Final = (3, 38, 0)
_encode: Final = msgspec.json.Encoder().encode

# Finds the events a command wrote to a stream by its command id (``read_command``), so a retried
# Idempotency-Key is recognised however long ago it was first used. Partial: only keyed commands'
# events enter it.
COMMAND_INDEX_DDL: Final = """
CREATE INDEX IF NOT EXISTS events_by_command
ON events (stream_id, json_extract(metadata, '$.command_id'))
WHERE json_extract(metadata, '$.command_id') IS NOT NULL;
"""

_EVENT_TABLES_DDL: Final = """
CREATE TABLE IF NOT EXISTS events (
    position    INTEGER PRIMARY KEY,
    stream_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    schema      INTEGER NOT NULL,
    event_id    TEXT    NOT NULL UNIQUE,
    occurred_at INTEGER NOT NULL,
    data        TEXT    NOT NULL,
    metadata    TEXT    NOT NULL,
    UNIQUE (stream_id, version)
);
-- With the UNIQUE above, an INSERT can only continue a stream: version n needs n - 1 stored, and
-- n must be free. So one INSERT of a batch's rows checks every expected version by itself.
CREATE TRIGGER IF NOT EXISTS events_continue_their_stream BEFORE INSERT ON events
WHEN NEW.version > 1 AND NOT EXISTS (
    SELECT 1 FROM events WHERE stream_id = NEW.stream_id AND version = NEW.version - 1
)
BEGIN
    SELECT RAISE(ABORT, 'the stream does not reach the version before this event');
END;
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id TEXT    PRIMARY KEY,
    version   INTEGER NOT NULL,
    schema    INTEGER NOT NULL,
    state     BLOB    NOT NULL
);
"""
EVENTS_DDL: Final = _EVENT_TABLES_DDL + COMMAND_INDEX_DDL

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} must be timezone-aware")
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def json_rows(rows: Sequence[Any]) -> str:
    """The JSON array a ``json_each(?)`` parameter takes: of rows (each an array, read with
    ``json_columns``) or of single values (read as ``value``)."""
    return _encode(rows).decode()


def json_columns(names: str) -> str:
    """``value ->> 0 AS a, value ->> 1 AS b, ...``: the columns of a row of ``json_each`` over
    ``json_rows``, named after ``names`` ("a, b, ...")."""
    return ", ".join(
        f"value ->> {index} AS {name.strip()}" for index, name in enumerate(names.split(","))
    )


class SqliteVersionError(ConfigError):
    """The SQLite library Python is linked with is older than the set-based writes need."""

    def __init__(self, found: str) -> None:
        required = ".".join(str(part) for part in REQUIRED_SQLITE)
        super().__init__(
            f"SQLite {required} or newer is required (json_each and ->> in every write); this "
            f"Python is linked with SQLite {found}"
        )
        self.required = required
        self.found = found


def require_sqlite() -> None:
    """Refuse an SQLite library older than ``REQUIRED_SQLITE`` (``SqliteVersionError``)."""
    if sqlite3.sqlite_version_info < REQUIRED_SQLITE:
        raise SqliteVersionError(sqlite3.sqlite_version)


def open_connection(path: Path, *, synchronous: str, writer: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit ``BEGIN``/``COMMIT``), usable
    from the thread that runs it rather than the one that opened it. Refuses an SQLite library
    too old for the writes (``SqliteVersionError``)."""
    require_sqlite()
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=64
    )
    # Another process (a backup, the CLI) may hold the lock briefly: wait instead of failing.
    connection.execute("PRAGMA busy_timeout = 5000")
    # Statement journals and sorts in memory: on disk, every multi-row INSERT in a transaction
    # created, wrote and unlinked a file under /var/tmp (about 50 a second under load).
    connection.execute("PRAGMA temp_store = MEMORY")
    if writer:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
    else:
        connection.execute("PRAGMA query_only = ON")
    return connection
