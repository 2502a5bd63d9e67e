"""Handlers of the account queries. Views come from the read model, except the balance at a past
instant, which is folded from the event stream itself."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from core.ports import EventStore
from handlers.accounts.access import TELLER, can_access
from handlers.accounts.account import account_stream
from handlers.accounts.account_writer import AccountWriter
from handlers.accounts.codec import decode_event
from handlers.accounts.errors import (
    AccountNotFoundError,
    InvalidRequestError,
    TransferNotFoundError,
)
from handlers.accounts.messages import (
    GetAccount,
    GetBalanceAt,
    GetStatement,
    GetTransfer,
    ListAccounts,
)
from handlers.accounts.progress import ProjectionProgress
from handlers.accounts.readmodel import AccountReadModel
from handlers.accounts.views import AccountView, BalanceAt, Page, Statement, TransferView

__all__ = [
    "GetAccountHandler",
    "GetBalanceAtHandler",
    "GetStatementHandler",
    "GetTransferHandler",
    "ListAccountsHandler",
    "decode_cursor",
    "decode_version_cursor",
    "encode_cursor",
]

MAX_PAGE = 200
_VERSION: Final = re.compile(r"[0-9]{1,18}")
V = TypeVar("V")


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _not_a_cursor() -> InvalidRequestError:
    return InvalidRequestError("cursor", "is not a cursor this API issued")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _not_a_cursor() from None


def decode_version_cursor(cursor: str | None) -> int:
    """The version a statement page ends at, 0 without a cursor. A version is at most 18 ASCII
    digits, so it fits the stores' 64-bit integers; any other text is not a cursor."""
    after = decode_cursor(cursor)
    if after is None:
        return 0
    if _VERSION.fullmatch(after) is None:
        raise _not_a_cursor()
    return int(after)


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError("limit", f"must be between 1 and {MAX_PAGE}")
    return limit


async def _at_version(
    progress: ProjectionProgress,
    read: Callable[[], Awaitable[V | None]],
    version_of: Callable[[V], int],
    min_version: int,
) -> V | None:
    """Read, waiting briefly for the projection to reach ``min_version`` (read-your-writes)."""
    view = await read()
    if min_version <= 0:
        return view
    async for _ in progress.changes():
        if view is not None and version_of(view) >= min_version:
            break
        view = await read()
    return view


class GetAccountHandler:
    def __init__(self, read_model: AccountReadModel, progress: ProjectionProgress) -> None:
        self._read_model = read_model
        self._progress = progress

    async def handle(self, query: GetAccount) -> AccountView:
        view = await _at_version(
            self._progress,
            lambda: self._read_model.get_account(query.account_id),
            lambda v: v.version,
            query.min_version,
        )
        if view is None or not can_access(query.actor, view.owner):
            raise AccountNotFoundError(query.account_id)
        return view


class ListAccountsHandler:
    def __init__(self, read_model: AccountReadModel) -> None:
        self._read_model = read_model

    async def handle(self, query: ListAccounts) -> Page[AccountView]:
        limit = _check_limit(query.limit)
        owner = query.owner if query.actor.has_role(TELLER) else query.actor.subject
        after = decode_cursor(query.cursor)
        items = await self._read_model.list_accounts(owner, after, limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return Page(items, encode_cursor(items[-1].id) if more else None)


class GetStatementHandler:
    def __init__(self, read_model: AccountReadModel, progress: ProjectionProgress) -> None:
        self._read_model = read_model
        self._progress = progress

    async def handle(self, query: GetStatement) -> Statement:
        limit = _check_limit(query.limit)
        account = await GetAccountHandler(self._read_model, self._progress).handle(
            GetAccount(query.account_id, query.actor, query.min_version)
        )
        after_version = decode_version_cursor(query.cursor)
        if query.start and query.end and query.start >= query.end:
            raise InvalidRequestError("from", "must be before 'to'")
        items = await self._read_model.statement(
            account.id, query.start, query.end, after_version, limit + 1
        )
        more = len(items) > limit
        items = items[:limit]
        cursor = encode_cursor(str(items[-1].version)) if more else None
        return Statement(account.id, account.currency, items, cursor)


class GetBalanceAtHandler:
    def __init__(self, writer: AccountWriter, store: EventStore) -> None:
        self._writer = writer
        self._store = store

    async def handle(self, query: GetBalanceAt) -> BalanceAt:
        if query.at.tzinfo is None:
            raise InvalidRequestError("at", "needs a time zone offset, e.g. Z")
        account = await self._writer.load(query.account_id, query.actor)
        balance = version = 0
        for record in await self._store.read(account_stream(account.id), until=query.at):
            version = record.version
            balance = getattr(decode_event(record), "balance_after", balance)
        return BalanceAt(account.id, query.at, balance, account.currency, version)


class GetTransferHandler:
    def __init__(self, read_model: AccountReadModel, progress: ProjectionProgress) -> None:
        self._read_model = read_model
        self._progress = progress

    async def handle(self, query: GetTransfer) -> TransferView:
        view = await _at_version(
            self._progress,
            lambda: self._read_model.get_transfer(query.transfer_id),
            lambda v: v.version,
            query.min_version,
        )
        if view is None or not can_access(query.actor, view.owner):
            raise TransferNotFoundError(query.transfer_id)
        return view
