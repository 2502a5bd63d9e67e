"""The SQLite backends' files, and the accounts views' tables in ``views.db``.

Times are integer microseconds since the Unix epoch, UTC (``core.eventsourcing.schema``).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACCOUNT_COLUMNS",
    "EVENTS_FILE",
    "MOVEMENT_COLUMNS",
    "TRANSFER_COLUMNS",
    "VIEWS_DDL",
    "VIEWS_FILE",
    "VIEWS_INDEXES",
    "VIEWS_TABLES",
]

EVENTS_FILE: Final = "events.db"
VIEWS_FILE: Final = "views.db"

VIEWS_TABLES: Final = """
CREATE TABLE IF NOT EXISTS accounts (
    id        TEXT    PRIMARY KEY,
    owner     TEXT    NOT NULL,
    currency  TEXT    NOT NULL,
    balance   INTEGER NOT NULL,
    status    TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    opened_at INTEGER NOT NULL,
    closed_at INTEGER
);
CREATE TABLE IF NOT EXISTS movements (
    account       TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    id            TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    amount        INTEGER NOT NULL,
    balance_after INTEGER NOT NULL,
    occurred_at   INTEGER NOT NULL,
    description   TEXT,
    transfer_id   TEXT,
    counterparty  TEXT,
    PRIMARY KEY (account, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS transfers (
    id           TEXT    PRIMARY KEY,
    owner        TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    destination  TEXT    NOT NULL,
    amount       INTEGER NOT NULL,
    currency     TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    reason       TEXT,
    version      INTEGER NOT NULL,
    requested_at INTEGER NOT NULL,
    description  TEXT
);
CREATE TABLE IF NOT EXISTS checkpoints (
    projection TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL
);
"""
# The secondary indexes: a rebuild creates them once its generation is filled, which is faster
# than keeping them up to date row by row.
VIEWS_INDEXES: Final = """
CREATE INDEX IF NOT EXISTS accounts_by_owner ON accounts (owner, id);
CREATE INDEX IF NOT EXISTS movements_by_time ON movements (account, occurred_at);
CREATE INDEX IF NOT EXISTS transfers_by_status ON transfers (status);
"""
VIEWS_DDL: Final = VIEWS_TABLES + VIEWS_INDEXES

# The columns the read model writes and reads, in the order of its rows.
ACCOUNT_COLUMNS: Final = "id, owner, currency, balance, status, version, opened_at, closed_at"
MOVEMENT_COLUMNS: Final = (
    "id, account, kind, amount, balance_after, version, occurred_at, description, transfer_id, "
    "counterparty"
)
TRANSFER_COLUMNS: Final = (
    "id, source, destination, amount, currency, status, version, requested_at, owner, "
    "description, reason"
)
