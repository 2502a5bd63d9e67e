"""The SQLite read model's queries, each run on a reader connection, and its rows as views."""

from __future__ import annotations

import sqlite3
from typing import Any

from core.eventsourcing.schema import from_micros
from handlers.accounts.readmodel import FeedPage, closing_of
from handlers.accounts.views import AccountView, Movement, TransferView
from plugins.sqlite.schema import ACCOUNT_COLUMNS, MOVEMENT_COLUMNS, TRANSFER_COLUMNS

__all__ = [
    "checkpoint",
    "feed_page",
    "get_account",
    "get_transfer",
    "list_accounts",
    "pending",
    "statement",
]


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


def checkpoint(projection: str, connection: sqlite3.Connection) -> int:
    sql = "SELECT position FROM checkpoints WHERE projection = ?"
    row = connection.execute(sql, (projection,)).fetchone()
    return 0 if row is None else int(row[0])


def get_account(account_id: str, connection: sqlite3.Connection) -> AccountView | None:
    sql = f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?"
    row = connection.execute(sql, (account_id,)).fetchone()
    return None if row is None else _account(row)


def list_accounts(
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
    sql = f"SELECT {ACCOUNT_COLUMNS} FROM accounts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id LIMIT ?"
    params.append(max(limit, 0))
    return [_account(row) for row in connection.execute(sql, params)]


def statement(
    account_id: str,
    start: int | None,
    end: int | None,
    after_version: int,
    limit: int,
    connection: sqlite3.Connection,
) -> list[Movement]:
    sql = f"SELECT {MOVEMENT_COLUMNS} FROM movements WHERE account = ? AND version > ?"
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


def feed_page(
    account_id: str, after_version: int, limit: int, connection: sqlite3.Connection
) -> FeedPage:
    """The account, then its movements, in one job: a batch commits its movements with the
    account's change, so a close read first comes with every movement before it."""
    closing = closing_of(get_account(account_id, connection))
    return FeedPage(statement(account_id, None, None, after_version, limit, connection), closing)


def get_transfer(transfer_id: str, connection: sqlite3.Connection) -> TransferView | None:
    sql = f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = ?"
    row = connection.execute(sql, (transfer_id,)).fetchone()
    return None if row is None else _transfer(row)


def pending(connection: sqlite3.Connection) -> list[str]:
    sql = "SELECT id FROM transfers WHERE status = 'pending' ORDER BY id"
    return [row[0] for row in connection.execute(sql)]
