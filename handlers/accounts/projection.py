"""The projection: each stored event becomes the view changes it implies. Pure, no I/O.

Each event type has its function, found by the event's class in the table of the stream it is
on (``_ON_ACCOUNTS``, ``_ON_TRANSFERS``): one dictionary lookup per event, where a ``match``
tried the classes one after another. A rebuild runs this for every event in the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from core.records import EventRecord
from handlers.accounts import events as ev
from handlers.accounts.codec import decode_event
from handlers.accounts.readmodel import (
    AccountChanged,
    AccountOpenedView,
    MovementAdded,
    TransferRequestedView,
    TransferStatusChanged,
    ViewChange,
)
from handlers.accounts.views import AccountView, Movement, MovementKind, TransferView

__all__ = ["PROJECTION", "project", "project_all"]

PROJECTION: Final = "accounts"

_Projection = Callable[[EventRecord, Any], list[ViewChange]]


def project_all(records: Iterable[EventRecord]) -> list[ViewChange]:
    changes: list[ViewChange] = []
    for record in records:
        changes += project(record)
    return changes


def project(record: EventRecord) -> list[ViewChange]:
    event = decode_event(record)
    on_transfer = record.stream_id.startswith("transfer-")
    projection = (_ON_TRANSFERS if on_transfer else _ON_ACCOUNTS).get(type(event))
    if projection is None:
        stream = "a transfer" if on_transfer else "an account"
        raise ValueError(f"{record.type} does not belong on {stream} stream")
    return projection(record, event)


def _account_id(record: EventRecord) -> str:
    return record.stream_id.removeprefix("account-")


def _opened(record: EventRecord, event: ev.AccountOpened) -> list[ViewChange]:
    account = AccountView(
        _account_id(record), event.owner, event.currency, 0, "open", record.version,
        record.occurred_at,
    )  # fmt: skip
    return [AccountOpenedView(account)]


def _closed(record: EventRecord, event: ev.AccountClosed) -> list[ViewChange]:
    closed_at = record.occurred_at
    return [AccountChanged(_account_id(record), record.version, None, "closed", closed_at)]


def _movement(
    record: EventRecord,
    kind: MovementKind,
    amount: int,
    balance_after: int,
    description: str | None,
    transfer_id: str | None = None,
    counterparty: str | None = None,
) -> list[ViewChange]:
    """A statement line, and the account's balance at that version."""
    account_id = _account_id(record)
    version = record.version
    movement = Movement(
        record.event_id, account_id, kind, amount, balance_after, version, record.occurred_at,
        description, transfer_id, counterparty,
    )  # fmt: skip
    return [MovementAdded(movement), AccountChanged(account_id, version, balance_after)]


def _deposited(record: EventRecord, event: ev.MoneyDeposited) -> list[ViewChange]:
    return _movement(record, "deposit", event.amount, event.balance_after, event.description)


def _withdrawn(record: EventRecord, event: ev.MoneyWithdrawn) -> list[ViewChange]:
    return _movement(record, "withdrawal", event.amount, event.balance_after, event.description)


def _debited(record: EventRecord, event: ev.TransferDebited) -> list[ViewChange]:
    return _movement(
        record, "transfer_out", event.amount, event.balance_after, event.description,
        event.transfer_id, event.destination,
    )  # fmt: skip


def _credited(record: EventRecord, event: ev.TransferCredited) -> list[ViewChange]:
    return _movement(
        record, "transfer_in", event.amount, event.balance_after, event.description,
        event.transfer_id, event.source,
    )  # fmt: skip


def _refunded(record: EventRecord, event: ev.TransferRefunded) -> list[ViewChange]:
    return _movement(
        record, "transfer_refund", event.amount, event.balance_after, event.reason,
        event.transfer_id,
    )  # fmt: skip


def _transfer_id(record: EventRecord) -> str:
    return record.stream_id.removeprefix("transfer-")


def _requested(record: EventRecord, event: ev.TransferRequested) -> list[ViewChange]:
    transfer = TransferView(
        id=_transfer_id(record),
        source=event.source,
        destination=event.destination,
        amount=event.amount,
        currency=event.currency,
        status="pending",
        version=record.version,
        requested_at=record.occurred_at,
        owner=event.owner,
        description=event.description,
    )
    return [TransferRequestedView(transfer)]


def _completed(record: EventRecord, event: ev.TransferCompleted) -> list[ViewChange]:
    return [TransferStatusChanged(_transfer_id(record), record.version, "completed")]


def _failed(record: EventRecord, event: ev.TransferFailed) -> list[ViewChange]:
    return [TransferStatusChanged(_transfer_id(record), record.version, "failed", event.reason)]


_ON_ACCOUNTS: Final[dict[type[ev.Event], _Projection]] = {
    ev.AccountOpened: _opened,
    ev.MoneyDeposited: _deposited,
    ev.MoneyWithdrawn: _withdrawn,
    ev.TransferDebited: _debited,
    ev.TransferCredited: _credited,
    ev.TransferRefunded: _refunded,
    ev.AccountClosed: _closed,
}
_ON_TRANSFERS: Final[dict[type[ev.Event], _Projection]] = {
    ev.TransferRequested: _requested,
    ev.TransferCompleted: _completed,
    ev.TransferFailed: _failed,
}
