"""The SQLite event store's appends: every append of one commit checked and written set-based."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from core.errors import ConcurrencyError
from core.eventsourcing.links import Link
from core.eventsourcing.schema import json_columns, json_rows

__all__ = ["Append", "append_all", "stream_version"]

_INSERTED: Final = "stream_id, version, type, schema, event_id, occurred_at, data, metadata"
_INSERT: Final = f"INSERT INTO events ({_INSERTED}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_ALL: Final = (
    f"INSERT INTO events ({_INSERTED}) SELECT {json_columns(_INSERTED)}"
    " FROM json_each(?) ORDER BY key"
)
# One row for all the streams, for the reason ``select_records`` gives.
_VERSIONS: Final = (
    "SELECT json_group_object(stream_id, version) FROM (SELECT stream_id, max(version) AS version"
    " FROM events WHERE stream_id IN (SELECT value FROM json_each(?)) GROUP BY stream_id)"
)
_decode_versions = msgspec.json.Decoder(dict[str, int]).decode


def stream_version(stream_id: str, connection: sqlite3.Connection) -> int:
    sql = "SELECT max(version) FROM events WHERE stream_id = ?"
    found: int | None = connection.execute(sql, (stream_id,)).fetchone()[0]
    return found or 0


@dataclass(frozen=True, slots=True)
class Append:
    stream_id: str
    expected: int
    rows: list[tuple[Any, ...]]
    link: Link | None = None  # queued on top of another append (core.eventsourcing.links)


def append_all(connection: sqlite3.Connection, appends: list[Append]) -> list[int | Exception]:
    """Every append of one commit, set-based (each statement releases the GIL and has to win it
    back from the busy event loop, so a statement or two per append would cost as many
    switches). Gives each append the position of its first event, or its ConcurrencyError.

    First, one INSERT of every row: the table's UNIQUE (stream_id, version) and its trigger
    refuse it whole unless each append continues its stream, so it succeeds exactly when every
    expected version holds. That is the common case, and it needs no transaction around it (the
    writer runs it in autocommit mode). If it is refused, inside a transaction one query reads
    the streams' versions, the appends are checked in order against them, and one INSERT writes
    the accepted rows; outside one, the error goes back to the writer, which runs the batch
    again inside a transaction.

    An append chained to one that failed (``Link.broken``) is refused there too, whatever its
    stream's version: it was decided from a state that included the failed one. Appends to one
    stream in one batch chain by their versions: each expects the version the previous ends at.
    """
    broken = any(append.link is not None and append.link.broken for append in appends)
    if broken and not connection.in_transaction:
        raise _Chained  # the writer runs the batch again inside a transaction
    rows = [row for append in appends for row in append.rows]
    try:
        if broken:
            raise _Chained
        position = _insert(rows, connection) - len(rows) + 1
    except (sqlite3.IntegrityError, _Chained):
        if not connection.in_transaction:
            raise
    else:
        firsts: list[int | Exception] = []
        for append in appends:
            firsts.append(position)
            position += len(append.rows)
        return firsts
    versions = _versions({append.stream_id for append in appends}, connection)
    accepted: list[tuple[Any, ...]] = []
    offsets: list[int | Exception] = []
    for append in appends:
        actual = versions.get(append.stream_id, 0)
        link = append.link
        if actual != append.expected or (link is not None and link.broken):
            if link is not None:
                link.failed = True
            offsets.append(ConcurrencyError(append.stream_id, append.expected, actual))
            continue
        # Appends to one stream in one batch: the next one expects the version this one ends at.
        versions[append.stream_id] = append.expected + len(append.rows)
        offsets.append(len(accepted))
        accepted.extend(append.rows)
    if not accepted:
        return offsets
    try:
        last = _insert(accepted, connection)
    except sqlite3.IntegrityError as error:
        # Only an event id already stored gets here (versions were checked above); the writer
        # runs the appends again one by one, so that only the one that holds it fails.
        raise ValueError(f"an event id is already stored ({error})") from None
    first = last - len(accepted) + 1
    return [offset if isinstance(offset, Exception) else first + offset for offset in offsets]


class _Chained(Exception):
    """A batch holds an append whose chain broke: it needs the checked path."""


def _insert(rows: list[tuple[Any, ...]], connection: sqlite3.Connection) -> int:
    """Inserts ``rows`` in order and gives the position of the last one. One writer assigns
    positions max + 1, max + 2... so the rows' positions are contiguous, in order."""
    if len(rows) == 1:
        last = connection.execute(_INSERT, rows[0]).lastrowid
    else:
        last = connection.execute(_INSERT_ALL, (json_rows(rows),)).lastrowid
    assert last is not None
    return int(last)


def _versions(streams: set[str], connection: sqlite3.Connection) -> dict[str, int]:
    if len(streams) == 1:
        (stream_id,) = streams
        return {stream_id: stream_version(stream_id, connection)}
    (text,) = connection.execute(_VERSIONS, (json_rows(sorted(streams)),)).fetchone()
    return _decode_versions(text)
