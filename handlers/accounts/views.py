"""What queries and commands return: plain values, amounts in integer minor units."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

import msgspec

__all__ = [
    "AccountView",
    "BalanceAt",
    "Closing",
    "FeedItem",
    "Movement",
    "MovementKind",
    "Page",
    "Receipt",
    "Statement",
    "TransferView",
    "Watching",
]

T = TypeVar("T")

MovementKind = Literal["deposit", "withdrawal", "transfer_out", "transfer_in", "transfer_refund"]


class AccountView(msgspec.Struct, frozen=True):
    id: str
    owner: str
    currency: str
    balance: int
    status: Literal["open", "closed"]
    version: int
    opened_at: datetime
    closed_at: datetime | None = None


class Movement(msgspec.Struct, frozen=True):
    """One line of a statement, and the result of a deposit or withdrawal."""

    id: str
    account: str
    kind: MovementKind
    amount: int
    balance_after: int
    version: int
    occurred_at: datetime
    description: str | None = None
    transfer_id: str | None = None
    counterparty: str | None = None


class Receipt(msgspec.Struct, frozen=True):
    """What a deposit or withdrawal returns, from the write model."""

    movement: Movement
    currency: str


class Statement(msgspec.Struct, frozen=True):
    account: str
    currency: str
    items: list[Movement]
    next_cursor: str | None = None


class TransferView(msgspec.Struct, frozen=True):
    id: str
    source: str
    destination: str
    amount: int
    currency: str
    status: Literal["pending", "completed", "failed"]
    version: int
    requested_at: datetime
    owner: str = ""
    description: str | None = None
    reason: str | None = None


class BalanceAt(msgspec.Struct, frozen=True):
    account: str
    at: datetime
    balance: int
    currency: str
    version: int


class Page(msgspec.Struct, Generic[T], frozen=True):
    items: list[T]
    next_cursor: str | None = None


class Watching(msgspec.Struct, frozen=True):
    """The first item of an account's feed: the account exists, the caller may watch it, and
    the movements follow."""

    account: str
    currency: str


class Closing(msgspec.Struct, frozen=True):
    """The last item of a closed account's feed: the close, at the account's last version."""

    account: str
    version: int
    closed_at: datetime | None


FeedItem = Watching | Movement | Closing
