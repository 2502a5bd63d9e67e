"""The SQLite accounts read model: ``views.db`` in the data directory.

``apply`` writes a batch's view changes and the projection's checkpoint in one transaction, so
after a crash either both are there or neither is, and each event is applied exactly once. Every
change is also guarded by (stream, version) on its own, so applying a batch twice changes nothing.

That transaction is one statement: ``INSERT INTO view_batches`` (a view) runs a trigger that
applies the batch's rows, one set-based statement per table, and moves the checkpoint. A
statement is atomic, so it needs no ``BEGIN``/``COMMIT``; and the writer thread gives the GIL
back to the event loop, and has to win it again, once per statement, not six times.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

from core.errors import StoreUnavailableError
from core.eventsourcing.schema import (
    SET_BASED,
    VIEWS_DDL,
    VIEWS_FILE,
    from_micros,
    json_columns,
    json_rows,
    to_micros,
)
from core.eventsourcing.writer import GroupCommitWriter, ReaderPool
from handlers.accounts.readmodel import (
    AccountChanged,
    AccountOpenedView,
    ClaimMode,
    MovementAdded,
    TransferRequestedView,
    TransferStatusChanged,
    ViewChange,
)
from handlers.accounts.views import AccountView, Movement, TransferView
from plugins.sqlite.claims import FileClaim

__all__ = ["SqliteReadModel"]

_ACCOUNT_COLUMNS: Final = "id, owner, currency, balance, status, version, opened_at, closed_at"
_MOVEMENT_COLUMNS: Final = (
    "id, account, kind, amount, balance_after, version, occurred_at, description, transfer_id, "
    "counterparty"
)
_TRANSFER_COLUMNS: Final = (
    "id, source, destination, amount, currency, status, version, requested_at, owner, "
    "description, reason"
)
_INSERT_ACCOUNT: Final = (
    f"INSERT OR IGNORE INTO accounts ({_ACCOUNT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"
)
_CHANGE_ACCOUNT: Final = """
UPDATE accounts SET version = ?, balance = coalesce(?, balance), status = coalesce(?, status),
    closed_at = coalesce(?, closed_at)
WHERE id = ? AND version < ?
"""
_INSERT_MOVEMENT: Final = (
    f"INSERT OR IGNORE INTO movements ({_MOVEMENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_TRANSFER: Final = (
    f"INSERT OR IGNORE INTO transfers ({_TRANSFER_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_CHANGE_TRANSFER: Final = (
    "UPDATE transfers SET version = ?, status = ?, reason = ? WHERE id = ? AND version < ?"
)
# An account's merged changes (see _plan): each field with the version it came with.
_CHANGED_COLUMNS: Final = (
    "id, version, balance, balance_version, status, status_version, closed_at, closed_version"
)
# One statement per table and batch, each taking the batch's rows as one JSON array (see _plan).
_BATCH_SQL: Final = (
    f"INSERT OR IGNORE INTO accounts ({_ACCOUNT_COLUMNS}) SELECT {json_columns(_ACCOUNT_COLUMNS)} "
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
    f"INSERT OR IGNORE INTO movements ({_MOVEMENT_COLUMNS}) "
    f"SELECT {json_columns(_MOVEMENT_COLUMNS)} FROM json_each(?)",
    f"INSERT OR IGNORE INTO transfers ({_TRANSFER_COLUMNS}) "
    f"SELECT {json_columns(_TRANSFER_COLUMNS)} FROM json_each(?)",
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
# What _plan returns, in order: the columns of ``view_batches`` that _BATCH_SQL reads.
_PLANNED: Final = ("opened", "accounts", "movements", "requested", "transfers")


def _batch_ddl() -> str:
    """``view_batches``: inserting a row (the projection, the checkpoint and _plan's JSON row
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


_INSERT_BATCH: Final = f"INSERT INTO view_batches VALUES ({', '.join('?' * (2 + len(_PLANNED)))})"


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _write(change: ViewChange, connection: sqlite3.Connection) -> None:
    match change:
        case AccountOpenedView(account=a):
            values: tuple[Any, ...] = (
                a.id, a.owner, a.currency, a.balance, a.status, a.version,
                to_micros(a.opened_at), _micros(a.closed_at),
            )  # fmt: skip
            connection.execute(_INSERT_ACCOUNT, values)
        case AccountChanged(account_id=account_id, version=version):
            values = (
                version, change.balance, change.status, _micros(change.closed_at),
                account_id, version,
            )  # fmt: skip
            connection.execute(_CHANGE_ACCOUNT, values)
        case MovementAdded(movement=m):
            values = (
                m.id, m.account, m.kind, m.amount, m.balance_after, m.version,
                to_micros(m.occurred_at), m.description, m.transfer_id, m.counterparty,
            )  # fmt: skip
            connection.execute(_INSERT_MOVEMENT, values)
        case TransferRequestedView(transfer=t):
            values = (
                t.id, t.source, t.destination, t.amount, t.currency, t.status, t.version,
                to_micros(t.requested_at), t.owner, t.description, t.reason,
            )  # fmt: skip
            connection.execute(_INSERT_TRANSFER, values)
        case TransferStatusChanged():
            values = (
                change.version, change.status, change.reason, change.transfer_id, change.version,
            )  # fmt: skip
            connection.execute(_CHANGE_TRANSFER, values)


def _apply_one_by_one(
    projection: str, changes: Sequence[ViewChange], checkpoint: int, connection: sqlite3.Connection
) -> None:
    """A statement per change, inside the writer's transaction: for an SQLite without
    ``json_each`` and ``->>``, or a batch that _plan cannot merge."""
    for change in changes:
        _write(change, connection)
    connection.execute(_SAVE_CHECKPOINT, (projection, checkpoint))


def _apply_batch(parameters: tuple[Any, ...], connection: sqlite3.Connection) -> None:
    connection.execute(_INSERT_BATCH, parameters)


def _batch_parameters(
    projection: str, checkpoint: int, plan: tuple[list[list[Any]], ...]
) -> tuple[Any, ...]:
    return (projection, checkpoint, *(json_rows(rows) if rows else None for rows in plan))


def _plan(changes: Sequence[ViewChange]) -> tuple[list[list[Any]], ...] | None:
    """The batch as rows for the set-based statements (``_BATCH_SQL``, in that order), or None
    when applying them in that order could differ from applying the changes one by one.

    The guarded updates of one row are merged: with versions increasing along the batch (as they
    do on a stream), applying them one by one keeps, for each field, the last non-null value
    whose version is above the stored one; so the merged row carries each field's value with the
    version it came with, and the statement keeps the ``version < :version`` guard per field.
    Inserts run before updates, so a row updated in the batch before its insert (which never
    happens on a stream, but ``apply`` accepts any changes) falls back to one by one.
    """
    opened: list[list[Any]] = []
    accounts: dict[str, list[Any]] = {}
    movements: list[list[Any]] = []
    requested: list[list[Any]] = []
    transfers: dict[str, list[Any]] = {}
    for change in changes:
        match change:
            case AccountOpenedView(account=a):
                if a.id in accounts:
                    return None
                opened.append([
                    a.id, a.owner, a.currency, a.balance, a.status, a.version,
                    to_micros(a.opened_at), _micros(a.closed_at),
                ])  # fmt: skip
            case AccountChanged(account_id=account_id, version=version):
                # [id, version, balance, its version, status, its version, closed_at, its version]
                row = accounts.get(account_id)
                if row is None:
                    row = accounts[account_id] = [account_id, version, *[None] * 6]
                elif version <= row[1]:
                    return None
                row[1] = version
                if change.balance is not None:
                    row[2:4] = change.balance, version
                if change.status is not None:
                    row[4:6] = change.status, version
                if change.closed_at is not None:
                    row[6:8] = to_micros(change.closed_at), version
            case MovementAdded(movement=m):
                movements.append([
                    m.id, m.account, m.kind, m.amount, m.balance_after, m.version,
                    to_micros(m.occurred_at), m.description, m.transfer_id, m.counterparty,
                ])  # fmt: skip
            case TransferRequestedView(transfer=t):
                if t.id in transfers:
                    return None
                requested.append([
                    t.id, t.source, t.destination, t.amount, t.currency, t.status, t.version,
                    to_micros(t.requested_at), t.owner, t.description, t.reason,
                ])  # fmt: skip
            case TransferStatusChanged(transfer_id=transfer_id, version=version):
                # Status and reason are both set by every change: the last one wins.
                last = transfers.get(transfer_id)
                if last is not None and version <= last[1]:
                    return None
                transfers[transfer_id] = [transfer_id, version, change.status, change.reason]
    return opened, list(accounts.values()), movements, requested, list(transfers.values())


def _reset(connection: sqlite3.Connection) -> None:
    for table in ("accounts", "movements", "transfers", "checkpoints"):
        connection.execute(f"DELETE FROM {table}")


def _account(row: tuple[Any, ...]) -> AccountView:
    id_, owner, currency, balance, status, version, opened_at, closed_at = row
    closed = None if closed_at is None else from_micros(closed_at)
    return AccountView(
        id_, owner, currency, balance, status, version, from_micros(opened_at), closed
    )


def _movement(row: tuple[Any, ...]) -> Movement:
    id_, account, kind, amount, after, version, occurred_at, text, transfer_id, other = row
    at = from_micros(occurred_at)
    return Movement(id_, account, kind, amount, after, version, at, text, transfer_id, other)


def _transfer(row: tuple[Any, ...]) -> TransferView:
    id_, source, destination, amount, currency, status, version, requested_at, *rest = row
    owner, description, reason = rest
    at = from_micros(requested_at)
    return TransferView(
        id_, source, destination, amount, currency, status, version, at, owner, description, reason
    )


def _checkpoint(projection: str, connection: sqlite3.Connection) -> int:
    sql = "SELECT position FROM checkpoints WHERE projection = ?"
    row = connection.execute(sql, (projection,)).fetchone()
    return 0 if row is None else int(row[0])


def _get_account(account_id: str, connection: sqlite3.Connection) -> AccountView | None:
    sql = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?"
    row = connection.execute(sql, (account_id,)).fetchone()
    return None if row is None else _account(row)


def _list_accounts(
    owner: str | None, after: str | None, limit: int, connection: sqlite3.Connection
) -> list[AccountView]:
    where: list[str] = []
    params: list[Any] = []
    if owner is not None:
        where.append("owner = ?")
        params.append(owner)
    if after is not None:
        where.append("id > ?")
        params.append(after)
    sql = f"SELECT {_ACCOUNT_COLUMNS} FROM accounts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id LIMIT ?"
    params.append(max(limit, 0))
    return [_account(row) for row in connection.execute(sql, params)]


def _statement(
    account_id: str,
    start: int | None,
    end: int | None,
    after_version: int,
    limit: int,
    connection: sqlite3.Connection,
) -> list[Movement]:
    sql = f"SELECT {_MOVEMENT_COLUMNS} FROM movements WHERE account = ? AND version > ?"
    params: list[Any] = [account_id, after_version]
    if start is not None:
        sql += " AND occurred_at >= ?"
        params.append(start)
    if end is not None:
        sql += " AND occurred_at < ?"
        params.append(end)
    sql += " ORDER BY version LIMIT ?"
    params.append(max(limit, 0))
    return [_movement(row) for row in connection.execute(sql, params)]


def _get_transfer(transfer_id: str, connection: sqlite3.Connection) -> TransferView | None:
    sql = f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = ?"
    row = connection.execute(sql, (transfer_id,)).fetchone()
    return None if row is None else _transfer(row)


def _pending(connection: sqlite3.Connection) -> list[str]:
    sql = "SELECT id FROM transfers WHERE status = 'pending' ORDER BY id"
    return [row[0] for row in connection.execute(sql)]


class SqliteReadModel:
    """``AccountReadModel`` and ``Lifecycle`` on ``<data_dir>/views.db``.

    Writes go through one writer thread; ``synchronous=NORMAL`` is enough here because the views
    and their checkpoint commit together: a power cut can only lose a tail of both, which the
    projection then replays from the event store.
    """

    def __init__(self, data_dir: Path, *, readers: int = 2) -> None:
        self.path = data_dir / VIEWS_FILE
        ddl = VIEWS_DDL + _batch_ddl() if SET_BASED else VIEWS_DDL
        self._writer = GroupCommitWriter(self.path, ddl=ddl, synchronous="NORMAL")
        self._readers = ReaderPool(self.path, readers)

    async def start(self) -> None:
        if self._writer.alive:
            return
        try:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailableError(f"cannot create {self.path.parent}: {error}") from error
        await self._writer.start()
        self._readers.start()

    async def close(self) -> None:
        await self._writer.close()
        await self._readers.close()

    async def ready(self) -> bool:
        return self._writer.alive

    async def checkpoint(self, projection: str) -> int:
        return await self._readers.run(partial(_checkpoint, projection))

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        """The changes and the checkpoint (which never moves back) in one transaction."""
        plan = _plan(changes) if SET_BASED else None
        if plan is None:
            job = partial(_apply_one_by_one, projection, list(changes), checkpoint)
            await self._writer.submit(job)
        else:
            parameters = _batch_parameters(projection, checkpoint, plan)
            await self._writer.submit(
                partial(_apply_batch, parameters), savepoint=False, autocommit=True
            )

    async def reset(self) -> None:
        await self._writer.submit(_reset)

    async def claim(self, mode: ClaimMode) -> FileClaim:
        """See ``ProjectionClaims``: a lock on ``views.lock`` beside the database."""
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        lock = self.path.with_suffix(".lock")
        return FileClaim.take(lock, mode, f"the read model {self.path}")

    async def get_account(self, account_id: str) -> AccountView | None:
        return await self._readers.run(partial(_get_account, account_id))

    async def list_accounts(
        self, owner: str | None, after: str | None, limit: int
    ) -> list[AccountView]:
        return await self._readers.run(partial(_list_accounts, owner, after, limit))

    async def statement(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime | None,
        after_version: int,
        limit: int,
    ) -> list[Movement]:
        query = partial(_statement, account_id, _micros(start), _micros(end), after_version, limit)
        return await self._readers.run(query)

    async def get_transfer(self, transfer_id: str) -> TransferView | None:
        return await self._readers.run(partial(_get_transfer, transfer_id))

    async def pending_transfers(self) -> list[str]:
        return await self._readers.run(_pending)
