"""Idempotent commands: whether a command id was already applied to an account, and with what
content, so that a repeat returns the first run's result and writes nothing."""

from __future__ import annotations

from handlers.accounts.account import COMMAND_MEMORY, AccountState, CommandMark, account_stream
from handlers.accounts.errors import IdempotencyConflictError
from handlers.accounts.messages import CommandContext
from handlers.accounts.repositories import Accounts
from handlers.accounts.results import movement_of
from handlers.accounts.views import Movement

__all__ = ["Replays"]


class Replays:
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

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

    async def committed(
        self, state: AccountState, context: CommandContext, fingerprint: str | None
    ) -> tuple[AccountState, int | None]:
        """``replayed``, for a state that may hold appends still in flight: when it names the
        command, wait for them to settle and look again in the committed state, so that a
        repeat answers only with what its first run really wrote (and runs again if that
        failed). Gives the state looked at, and the version."""
        version = await self.replayed(state, context, fingerprint)
        stream = account_stream(state.id)
        if version is not None and self._accounts.pending(stream):
            await self._accounts.settled(stream)
            state = await self._accounts.load(stream)
            version = await self.replayed(state, context, fingerprint)
        return state, version

    async def _recall(self, state: AccountState, command_id: str) -> CommandMark | None:
        """The account's record of ``command_id``. The state remembers the most recent command
        ids; once that memory is full, older ones may have left it, and the store's index of
        command ids answers for them, so a key is recognised for the life of the account."""
        mark = state.commands.get(command_id)
        if mark is not None or len(state.commands) < COMMAND_MEMORY:
            return mark
        written = await self._accounts.store.read_command(account_stream(state.id), command_id)
        if not written:
            return None
        last = written[-1]
        return CommandMark(last.metadata.command_hash or "", last.version)

    async def movement_at(self, account_id: str, version: int) -> Movement:
        """The movement recorded at ``version``: a repeated deposit's or withdrawal's answer."""
        stream = account_stream(account_id)
        records = await self._accounts.store.read(stream, after_version=version - 1)
        return movement_of(records[0])
