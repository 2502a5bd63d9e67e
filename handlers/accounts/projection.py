"""The projection: each stored event becomes the view changes it implies. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

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


def project_all(records: Iterable[EventRecord]) -> list[ViewChange]:
    return [change for record in records for change in project(record)]


def project(record: EventRecord) -> list[ViewChange]:
    event = decode_event(record)
    if record.stream_id.startswith("transfer-"):
        return [_project_transfer(record, event)]
    account_id = record.stream_id.removeprefix("account-")
    version = record.version
    match event:
        case ev.AccountOpened(owner=owner, currency=code):
            return [
                AccountOpenedView(
                    AccountView(account_id, owner, code, 0, "open", version, record.occurred_at)
                )
            ]
        case ev.AccountClosed():
            closed = AccountChanged(
                account_id, version, status="closed", closed_at=record.occurred_at
            )
            return [closed]
        case ev.MoneyDeposited(amount=amount, balance_after=after, description=text):
            return _movement(record, account_id, "deposit", amount, after, text)
        case ev.MoneyWithdrawn(amount=amount, balance_after=after, description=text):
            return _movement(record, account_id, "withdrawal", amount, after, text)
        case ev.TransferDebited(
            transfer_id=tid, destination=other, amount=amount, balance_after=after
        ):
            text = event.description
            return _movement(record, account_id, "transfer_out", amount, after, text, tid, other)
        case ev.TransferCredited(transfer_id=tid, source=other, amount=amount, balance_after=after):
            text = event.description
            return _movement(record, account_id, "transfer_in", amount, after, text, tid, other)
        case ev.TransferRefunded(transfer_id=tid, amount=amount, balance_after=after, reason=why):
            return _movement(record, account_id, "transfer_refund", amount, after, why, tid)
        case _:
            raise ValueError(f"{record.type} does not belong on an account stream")


def _movement(
    record: EventRecord,
    account_id: str,
    kind: MovementKind,
    amount: int,
    balance_after: int,
    description: str | None,
    transfer_id: str | None = None,
    counterparty: str | None = None,
) -> list[ViewChange]:
    movement = Movement(
        id=record.event_id,
        account=account_id,
        kind=kind,
        amount=amount,
        balance_after=balance_after,
        version=record.version,
        occurred_at=record.occurred_at,
        description=description,
        transfer_id=transfer_id,
        counterparty=counterparty,
    )
    return [
        MovementAdded(movement),
        AccountChanged(account_id, record.version, balance=balance_after),
    ]


def _project_transfer(record: EventRecord, event: ev.Event) -> ViewChange:
    transfer_id = record.stream_id.removeprefix("transfer-")
    match event:
        case ev.TransferRequested():
            return TransferRequestedView(
                TransferView(
                    id=transfer_id,
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
            )
        case ev.TransferCompleted():
            return TransferStatusChanged(transfer_id, record.version, "completed")
        case ev.TransferFailed(reason=reason):
            return TransferStatusChanged(transfer_id, record.version, "failed", reason)
        case _:
            raise ValueError(f"{record.type} does not belong on a transfer stream")
