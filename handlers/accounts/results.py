"""What the account commands return, built from the write side: the view of a state, and the
movement a deposit or withdrawal recorded."""

from __future__ import annotations

from core.records import EventRecord
from handlers.accounts import events as ev
from handlers.accounts.account import AccountState
from handlers.accounts.projection import project
from handlers.accounts.readmodel import MovementAdded
from handlers.accounts.views import AccountView, Movement, MovementKind

__all__ = ["account_view", "movement_from", "movement_of"]


def account_view(state: AccountState) -> AccountView:
    assert state.opened_at is not None
    assert state.status != "new"
    return AccountView(
        id=state.id,
        owner=state.owner,
        currency=state.currency,
        balance=state.balance,
        status=state.status,
        version=state.version,
        opened_at=state.opened_at,
        closed_at=state.closed_at,
    )


def movement_of(record: EventRecord) -> Movement:
    for change in project(record):
        if isinstance(change, MovementAdded):
            return change.movement
    raise LookupError(f"{record.stream_id}@{record.version} is not a movement")


def movement_from(event: ev.Event, record: EventRecord) -> Movement:
    """What ``movement_of(record)`` returns, where ``record`` is ``event`` just encoded: built
    from the event itself instead of decoding the record again (the deposit/withdrawal path)."""
    match event:
        case ev.MoneyDeposited():
            kind: MovementKind = "deposit"
        case ev.MoneyWithdrawn():
            kind = "withdrawal"
        case _:
            return movement_of(record)
    return Movement(
        id=record.event_id,
        account=record.stream_id.removeprefix("account-"),
        kind=kind,
        amount=event.amount,
        balance_after=event.balance_after,
        version=record.version,
        occurred_at=record.occurred_at,
        description=event.description,
    )
