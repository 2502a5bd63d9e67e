"""The write path every account command shares: take the account's turn, load it with access
checks, check the expected version, and append the decided events with their metadata."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from core.auth import Principal
from core.errors import ConcurrencyError
from core.locks import KeyedLocks
from core.records import EventMetadata, EventRecord
from handlers.accounts import events as ev
from handlers.accounts.access import can_access
from handlers.accounts.account import AccountState, account_stream
from handlers.accounts.clock import Clock
from handlers.accounts.codec import encode_event
from handlers.accounts.errors import AccountNotFoundError
from handlers.accounts.ids import new_id
from handlers.accounts.messages import CommandContext
from handlers.accounts.repositories import Accounts

__all__ = ["AccountWriter"]


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
