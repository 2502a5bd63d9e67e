"""How the SQLite read model writes a batch of view changes: set-based, in one statement.

``INSERT INTO view_batches`` (a view) runs a trigger that applies the batch's rows, one
set-based statement per table, each taking its rows as one JSON array through ``json_each``,
and moves the projection's checkpoint. A statement is atomic, so it needs no ``BEGIN``/``COMMIT``;
and the writer thread gives the GIL back to the event loop, and has to win it again, once per
statement, not six times.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from core.eventsourcing.schema import json_columns, json_rows, to_micros
from handlers.accounts.readmodel import (
    AccountChanged,
    AccountOpenedView,
    MovementAdded,
    TransferRequestedView,
    TransferStatusChanged,
    ViewChange,
)
from plugins.sqlite.schema import ACCOUNT_COLUMNS, MOVEMENT_COLUMNS, TRANSFER_COLUMNS

__all__ = ["BATCH_DDL", "apply_batches", "batch_parameters", "micros"]

# An account's merged changes (see _Plan): each field with the version it came with.
_CHANGED_COLUMNS: Final = (
    "id, version, balance, balance_version, status, status_version, closed_at, closed_version"
)
# One statement per table and batch, each taking the batch's rows as one JSON array (see _Plan).
_BATCH_SQL: Final = (
    f"INSERT OR IGNORE INTO accounts ({ACCOUNT_COLUMNS}) SELECT {json_columns(ACCOUNT_COLUMNS)} "
    "FROM json_each(?)",
    f"""
UPDATE accounts SET version = c.version,
    balance = CASE WHEN c.balance_version > accounts.version
        THEN c.balance ELSE accounts.balance END,
    status = CASE WHEN c.status_version > accounts.version
        THEN c.status ELSE accounts.status END,
    closed_at = CASE WHEN c.closed_version > accounts.version
        THEN c.closed_at ELSE accounts.closed_at END
FROM (
    SELECT {json_columns(_CHANGED_COLUMNS)} FROM json_each(?)
) AS c
WHERE accounts.id = c.id AND accounts.version < c.version
""",
    f"INSERT OR IGNORE INTO movements ({MOVEMENT_COLUMNS}) "
    f"SELECT {json_columns(MOVEMENT_COLUMNS)} FROM json_each(?)",
    f"INSERT OR IGNORE INTO transfers ({TRANSFER_COLUMNS}) "
    f"SELECT {json_columns(TRANSFER_COLUMNS)} FROM json_each(?)",
    f"""
UPDATE transfers SET version = c.version, status = c.status, reason = c.reason
FROM (SELECT {json_columns("id, version, status, reason")} FROM json_each(?)) AS c
WHERE transfers.id = c.id AND transfers.version < c.version
""",
)
_SAVE_CHECKPOINT: Final = """
INSERT INTO checkpoints (projection, position) VALUES (?, ?)
ON CONFLICT (projection) DO UPDATE SET position = max(position, excluded.position)
"""
# What _Plan.rows returns, in order: the columns of ``view_batches`` that _BATCH_SQL reads.
_PLANNED: Final = ("opened", "accounts", "movements", "requested", "transfers")


def _batch_ddl() -> str:
    """``view_batches``: inserting a row (the projection, the checkpoint and _Plan's JSON row
    sets) applies the batch; nothing is stored in the view. Dropped and created again at each
    start, in one transaction, so the trigger always runs this code's statements."""
    statements = [
        sql.replace("json_each(?)", f"json_each(NEW.{column})")
        for sql, column in zip(_BATCH_SQL, _PLANNED, strict=True)
    ]
    checkpoint = _SAVE_CHECKPOINT.replace("VALUES (?, ?)", "VALUES (NEW.projection, NEW.position)")
    body = ";\n".join(statement.strip() for statement in [*statements, checkpoint])
    columns = ", ".join(f"NULL AS {name}" for name in ("projection", "position", *_PLANNED))
    return f"""
BEGIN IMMEDIATE;
DROP TRIGGER IF EXISTS view_batches_apply;
DROP VIEW IF EXISTS view_batches;
CREATE VIEW view_batches AS SELECT {columns};
CREATE TRIGGER view_batches_apply INSTEAD OF INSERT ON view_batches BEGIN
{body};
END;
COMMIT;
"""


BATCH_DDL: Final = _batch_ddl()
_INSERT_BATCH: Final = f"INSERT INTO view_batches VALUES ({', '.join('?' * (2 + len(_PLANNED)))})"


def micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


class _Plan:
    """Changes as rows for the set-based statements (``_BATCH_SQL``, in that order), as long as
    applying them in that order gives what applying the changes one by one gives.

    The guarded updates of one row are merged: with versions increasing along the batch (as they
    do on a stream), applying them one by one keeps, for each field, the last non-null value
    whose version is above the stored one; so the merged row carries each field's value with the
    version it came with, and the statement keeps the ``version < :version`` guard per field.
    Inserts run before updates, so a row updated before its insert (which never happens on a
    stream, but ``apply`` accepts any changes) is left to the next plan.
    """

    def __init__(self) -> None:
        self.opened: list[list[Any]] = []
        self.accounts: dict[str, list[Any]] = {}
        self.movements: list[list[Any]] = []
        self.requested: list[list[Any]] = []
        self.transfers: dict[str, list[Any]] = {}

    def add(self, change: ViewChange) -> bool:
        """Takes ``change`` in; False (and nothing taken) when it cannot be merged here."""
        match change:
            case AccountOpenedView(account=a):
                if a.id in self.accounts:
                    return False
                self.opened.append([
                    a.id, a.owner, a.currency, a.balance, a.status, a.version,
                    to_micros(a.opened_at), micros(a.closed_at),
                ])  # fmt: skip
            case AccountChanged(account_id=account_id, version=version):
                # [id, version, balance, its version, status, its version, closed_at, its version]
                row = self.accounts.get(account_id)
                if row is None:
                    row = self.accounts[account_id] = [account_id, version, *[None] * 6]
                elif version <= row[1]:
                    return False
                row[1] = version
                if change.balance is not None:
                    row[2:4] = change.balance, version
                if change.status is not None:
                    row[4:6] = change.status, version
                if change.closed_at is not None:
                    row[6:8] = to_micros(change.closed_at), version
            case MovementAdded(movement=m):
                self.movements.append([
                    m.id, m.account, m.kind, m.amount, m.balance_after, m.version,
                    to_micros(m.occurred_at), m.description, m.transfer_id, m.counterparty,
                ])  # fmt: skip
            case TransferRequestedView(transfer=t):
                if t.id in self.transfers:
                    return False
                self.requested.append([
                    t.id, t.source, t.destination, t.amount, t.currency, t.status, t.version,
                    to_micros(t.requested_at), t.owner, t.description, t.reason,
                ])  # fmt: skip
            case TransferStatusChanged(transfer_id=transfer_id, version=version):
                # Status and reason are both set by every change: the last one wins.
                last = self.transfers.get(transfer_id)
                if last is not None and version <= last[1]:
                    return False
                self.transfers[transfer_id] = [transfer_id, version, change.status, change.reason]
        return True

    def rows(self) -> tuple[list[list[Any]], ...]:
        accounts, transfers = list(self.accounts.values()), list(self.transfers.values())
        return self.opened, accounts, self.movements, self.requested, transfers


def batch_parameters(
    projection: str, changes: Sequence[ViewChange], checkpoint: int
) -> list[tuple[Any, ...]]:
    """The rows of ``view_batches`` that apply ``changes`` and move the checkpoint: one, unless
    a change cannot be merged with those before it; then the next row starts with it, and the
    rows, inserted in order, apply the changes as one by one."""
    plans = [_Plan()]
    for change in changes:
        if not plans[-1].add(change):
            plans.append(_Plan())
            plans[-1].add(change)  # a plan takes any one change
    return [
        (projection, checkpoint, *(json_rows(rows) if rows else None for rows in plan.rows()))
        for plan in plans
    ]


def apply_batches(parameters: list[tuple[Any, ...]], connection: sqlite3.Connection) -> None:
    """Inserts the ``view_batches`` rows in order: alone in its commit, one row needs no
    transaction; more than one run inside the writer's."""
    for row in parameters:
        connection.execute(_INSERT_BATCH, row)
