"""Building event streams fast, through the repository itself: ``Accounts.save`` with many records
per append (one transaction each) instead of one command per event. ``save`` folds the records
and writes a snapshot when it crosses a multiple of ``snapshot_every``, as the command path does.
"""

from __future__ import annotations

from datetime import UTC, datetime

from core.records import EventMetadata, EventRecord
from handlers.accounts import events as ev
from handlers.accounts.account import AccountState, account_stream, open_account
from handlers.accounts.codec import encode_event
from handlers.accounts.ids import new_id
from handlers.accounts.repositories import Accounts

__all__ = ["BATCH", "build_account", "grow"]

BATCH = 10_000
_METADATA = EventMetadata(actor="bench")


def _records(stream: str, first_version: int, events: list[ev.Event]) -> list[EventRecord]:
    now = datetime.now(UTC)
    return [
        encode_event(
            event,
            stream_id=stream,
            version=first_version + offset,
            event_id=new_id(),
            occurred_at=now,
            metadata=_METADATA,
        )
        for offset, event in enumerate(events)
    ]


async def grow(accounts: Accounts, state: AccountState, count: int) -> AccountState:
    """Append ``count`` deposits of one minor unit to the account, ``BATCH`` per append."""
    stream = account_stream(state.id)
    while count > 0:
        step = min(count, BATCH)
        deposits: list[ev.Event] = [
            ev.MoneyDeposited(1, state.balance + i, None) for i in range(1, step + 1)
        ]
        state = await accounts.save(stream, state, _records(stream, state.version + 1, deposits))
        count -= step
    return state


async def build_account(accounts: Accounts, length: int, owner: str = "bench") -> AccountState:
    """A new account whose stream holds ``length`` events: opened, then deposits."""
    account_id = new_id()
    stream = account_stream(account_id)
    state = await accounts.load(stream)
    opened = _records(stream, 1, open_account(account_id, owner, "EUR", None))
    state = await accounts.save(stream, state, opened)
    return await grow(accounts, state, length - 1)
