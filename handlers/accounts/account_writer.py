"""The write path every account command shares: take the account's turn, load it with access
checks, check the expected version, and append the decided events with their metadata.

With a store that pipelines appends, a command holds the account's turn only while it loads,
decides and queues its append (``queue``), and waits for its commit after letting the next
command in: the next one decides from the state that includes the queued append (see
``core.repository``). Otherwise the turn lasts until the commit, as ``append`` does always."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
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
from handlers.accounts.errors import AccountNotFoundError, DomainError
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
        """Hold while loading, deciding and queueing (or appending), so that commands on one
        account in this process take turns rather than conflict."""
        return self._locks.hold(account_id)

    def pending(self, account_id: str) -> bool:
        """True while an append queued on the account has not committed or failed."""
        return self.accounts.pending(account_stream(account_id))

    async def settled(self, account_id: str, actor: Principal | None) -> AccountState:
        """``load`` once every append queued on the account settled: its committed state."""
        await self.accounts.settled(account_stream(account_id))
        return await self.load(account_id, actor)

    async def decide(
        self,
        state: AccountState,
        actor: Principal | None,
        decide: Callable[[AccountState], list[ev.Event]],
    ) -> tuple[AccountState, list[ev.Event]]:
        """``decide(state)``; if it refuses while appends are pending on the account, decide
        again once they settled: a refusal must not rest on an append that may still fail."""
        try:
            return state, decide(state)
        except DomainError:
            if not self.pending(state.id):
                raise
        state = await self.settled(state.id, actor)
        return state, decide(state)

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

    async def queue(
        self,
        state: AccountState,
        events: Sequence[ev.Event],
        context: CommandContext | None,
        fingerprint: str | None,
        causation_id: str | None = None,
    ) -> tuple[Awaitable[AccountState], list[EventRecord]]:
        """Queue the append (or, without a pipelining store, make it) and return what waits for
        its commit, with the records; the caller may give up the account's turn before that."""
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
        return await self.accounts.queue(stream, state, records), records
