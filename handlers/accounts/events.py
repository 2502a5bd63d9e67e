"""The accounts domain's events: one tagged union, payloads only.

Who, when and why (actor, occurred_at, correlation, command id) travel on the record's metadata,
not in the payload. Amounts are integer minor units. ``SCHEMAS`` is each type's current schema
number: bump it when a payload changes shape and add an upcaster in ``codec.py``.
"""

from __future__ import annotations

from typing import Final

import msgspec

__all__ = [
    "AccountClosed",
    "AccountEvent",
    "AccountOpened",
    "Event",
    "MoneyDeposited",
    "MoneyWithdrawn",
    "SCHEMAS",
    "TransferCompleted",
    "TransferCredited",
    "TransferDebited",
    "TransferEvent",
    "TransferFailed",
    "TransferRefunded",
    "TransferRequested",
]


class _Event(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True):
    pass


class AccountOpened(_Event, tag="AccountOpened", frozen=True):
    account_id: str
    owner: str
    currency: str


class MoneyDeposited(_Event, tag="MoneyDeposited", frozen=True):
    amount: int
    balance_after: int
    description: str | None = None


class MoneyWithdrawn(_Event, tag="MoneyWithdrawn", frozen=True):
    amount: int
    balance_after: int
    description: str | None = None


class TransferDebited(_Event, tag="TransferDebited", frozen=True):
    transfer_id: str
    destination: str
    amount: int
    balance_after: int
    description: str | None = None


class TransferCredited(_Event, tag="TransferCredited", frozen=True):
    transfer_id: str
    source: str
    amount: int
    balance_after: int
    description: str | None = None


class TransferRefunded(_Event, tag="TransferRefunded", frozen=True):
    transfer_id: str
    amount: int
    balance_after: int
    reason: str


class AccountClosed(_Event, tag="AccountClosed", frozen=True):
    pass


class TransferRequested(_Event, tag="TransferRequested", frozen=True):
    transfer_id: str
    owner: str  # the source account's owner: who may see the transfer
    source: str
    destination: str
    amount: int
    currency: str
    description: str | None = None


class TransferCompleted(_Event, tag="TransferCompleted", frozen=True):
    pass


class TransferFailed(_Event, tag="TransferFailed", frozen=True):
    reason: str


AccountEvent = (
    AccountOpened
    | MoneyDeposited
    | MoneyWithdrawn
    | TransferDebited
    | TransferCredited
    | TransferRefunded
    | AccountClosed
)
TransferEvent = TransferRequested | TransferCompleted | TransferFailed
Event = AccountEvent | TransferEvent

SCHEMAS: Final[dict[str, int]] = {
    "AccountOpened": 1,
    "MoneyDeposited": 2,
    "MoneyWithdrawn": 1,
    "TransferDebited": 1,
    "TransferCredited": 1,
    "TransferRefunded": 1,
    "AccountClosed": 1,
    "TransferRequested": 1,
    "TransferCompleted": 1,
    "TransferFailed": 1,
}
