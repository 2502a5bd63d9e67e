"""The write path every account command shares: load with access checks, decide, append."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from core.errors import ConcurrencyError
from core.locks import KeyedLocks
from core.ports import Principal
from core.records import EventMetadata, EventRecord
from handlers.accounts import events as ev
from handlers.accounts.account import COMMAND_MEMORY, AccountState, CommandMark, account_stream
from handlers.accounts.codec import encode_event
from handlers.accounts.errors import AccountNotFoundError, IdempotencyConflictError
from handlers.accounts.messages import TELLER, CommandContext
from handlers.accounts.projection import project
from handlers.accounts.readmodel import MovementAdded
from handlers.accounts.repositories import Accounts, Clock, new_id
from handlers.accounts.views import AccountView, Movement, MovementKind

__all__ = ["AccountWriter", "account_view", "can_access", "movement_from", "movement_of"]


def can_access(actor: Principal, owner: str) -> bool:
    return actor.subject == owner or actor.has_role(TELLER)


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


class AccountWriter:
    def __init__(self, accounts: Accounts, clock: Clock) -> None:
        self.accounts = accounts
        self._clock = clock
        self._locks = KeyedLocks()

    def exclusive(self, account_id: str) -> AbstractAsyncContextManager[None]:
        """Hold while loading, deciding and appending, so that commands on one account in this
        process take turns rather than conflict."""
        return self._locks.hold(account_id)

    async def load(self, account_id: str, actor: Principal | None) -> AccountState:
        """The account, if it exists and ``actor`` may act on it (None: the system itself);
        otherwise AccountNotFoundError, so a stranger cannot learn that it exists."""
        state = await self.accounts.load(account_stream(account_id))
        if state.status == "new" or (actor is not None and not can_access(actor, state.owner)):
            raise AccountNotFoundError(account_id)
        return state

    def check_version(self, state: AccountState, context: CommandContext) -> None:
        expected = context.expected_version
        if expected is not None and expected != state.version:
            raise ConcurrencyError(account_stream(state.id), expected, state.version)

    async def replayed(
        self, state: AccountState, context: CommandContext, fingerprint: str | None
    ) -> int | None:
        """The version where this command's first run ended, when ``context.command_id`` was
        already applied with the same content; IdempotencyConflictError if with other content."""
        if context.command_id is None:
            return None
        mark = await self._recall(state, context.command_id)
        if mark is None:
            return None
        if mark.command_hash != fingerprint:
            raise IdempotencyConflictError(context.command_id)
        return mark.version

    async def _recall(self, state: AccountState, command_id: str) -> CommandMark | None:
        """The account's record of ``command_id``. The state remembers the most recent command
        ids; once that memory is full, older ones may have left it, and the store's index of
        command ids answers for them, so a key is recognised for the life of the account."""
        mark = state.commands.get(command_id)
        if mark is not None or len(state.commands) < COMMAND_MEMORY:
            return mark
        written = await self.accounts.store.read_command(account_stream(state.id), command_id)
        if not written:
            return None
        last = written[-1]
        return CommandMark(last.metadata.command_hash or "", last.version)

    async def movement_at(self, account_id: str, version: int) -> Movement:
        stream = account_stream(account_id)
        records = await self.accounts.store.read(stream, after_version=version - 1)
        return movement_of(records[0])

    async def append(
        self,
        state: AccountState,
        events: Sequence[ev.Event],
        context: CommandContext | None,
        fingerprint: str | None,
        causation_id: str | None = None,
    ) -> tuple[AccountState, list[EventRecord]]:
        now = self._clock.now()
        metadata = EventMetadata(
            correlation_id=context.correlation_id if context else None,
            causation_id=causation_id,
            actor=context.actor.subject if context else None,
            command_id=context.command_id if context else None,
            command_hash=fingerprint if context and context.command_id else None,
        )
        stream = account_stream(state.id)
        records = [
            encode_event(
                event,
                stream_id=stream,
                version=state.version + offset,
                event_id=new_id(),
                occurred_at=now,
                metadata=metadata,
            )
            for offset, event in enumerate(events, start=1)
        ]
        new_state = await self.accounts.save(stream, state, records)
        return new_state, records
