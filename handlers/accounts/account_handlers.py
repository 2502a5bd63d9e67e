"""Handlers of the account commands: open, deposit, withdraw, close."""

from __future__ import annotations

from core.placement import StreamPlacement
from core.routing import fresh_id_here
from handlers.accounts import events as ev
from handlers.accounts.access import TELLER
from handlers.accounts.account import AccountState, account_stream, open_account
from handlers.accounts.account_writer import AccountWriter
from handlers.accounts.errors import IdempotencyConflictError
from handlers.accounts.ids import command_hash, new_id
from handlers.accounts.messages import CloseAccount, Deposit, OpenAccount, Withdraw
from handlers.accounts.money import parse_amount
from handlers.accounts.replays import Replays
from handlers.accounts.results import account_view, movement_from
from handlers.accounts.views import AccountView, Receipt

__all__ = ["CloseAccountHandler", "DepositHandler", "OpenAccountHandler", "WithdrawHandler"]


class OpenAccountHandler:
    def __init__(self, writer: AccountWriter, replays: Replays, placement: StreamPlacement) -> None:
        self._writer = writer
        self._replays = replays
        self._placement = placement

    async def handle(self, command: OpenAccount) -> AccountView:
        context = command.context
        actor = context.actor
        owner = command.owner if command.owner and actor.has_role(TELLER) else actor.subject
        fingerprint = None
        # The same command id opens the same account, so a repeat finds it; without one the new
        # account gets a fresh id that this instance writes.
        account_id = command.keyed_id
        if account_id is not None:
            fingerprint = command_hash("open", owner, command.currency, command.initial_deposit)
        else:
            account_id = fresh_id_here(self._placement, new_id, account_stream)
        accounts = self._writer.accounts
        stream = f"account-{account_id}"
        state = await accounts.load(stream)
        if state.status != "new" and accounts.pending(stream):
            # Opened by an append still in flight (maybe this key's first run): its outcome.
            await accounts.settled(stream)
            state = await accounts.load(stream)
        if state.status != "new":
            # The stream exists, so this key opened it: replay that answer, whatever happened
            # to the account since. An account is never opened twice.
            version = await self._replays.replayed(state, context, fingerprint)
            if version is None:
                raise IdempotencyConflictError(context.command_id or account_id)
            return account_view(await accounts.read_until(f"account-{account_id}", version))
        initial = None
        if command.initial_deposit is not None:
            initial = parse_amount(command.initial_deposit, command.currency, "initial_deposit")
        events = open_account(account_id, owner, command.currency, initial)
        committed, _ = await self._writer.queue(state, events, context, fingerprint)
        return account_view(await committed)


class _MovementHandler:
    kind = ""

    def __init__(self, writer: AccountWriter, replays: Replays) -> None:
        self._writer = writer
        self._replays = replays

    async def handle(self, command: Deposit | Withdraw) -> Receipt:
        writer = self._writer
        context = command.context
        # Only a command id needs the fingerprint (to tell a replay from a reused id).
        fingerprint = None
        if context.command_id is not None:
            fingerprint = command_hash(
                self.kind, command.account_id, command.amount, command.description
            )
        async with writer.exclusive(command.account_id):
            state = await writer.load(command.account_id, context.actor)
            state, version = await self._replays.committed(state, context, fingerprint)
            if version is not None:
                return Receipt(await self._replays.movement_at(state.id, version), state.currency)
            writer.check_version(state, context)
            amount = parse_amount(command.amount, state.currency)
            state, events = await writer.decide(
                state, context.actor, lambda s: self.decide(s, amount, command.description)
            )
            writer.check_version(state, context)
            committed, records = await writer.queue(state, events, context, fingerprint)
        new_state = await committed  # answered after its own commit, the turn already passed on
        return Receipt(movement_from(events[-1], records[-1]), new_state.currency)

    def decide(self, state: AccountState, amount: int, description: str | None) -> list[ev.Event]:
        raise NotImplementedError


class DepositHandler(_MovementHandler):
    kind = "deposit"

    def decide(self, state: AccountState, amount: int, description: str | None) -> list[ev.Event]:
        return state.deposit(amount, description)


class WithdrawHandler(_MovementHandler):
    kind = "withdraw"

    def decide(self, state: AccountState, amount: int, description: str | None) -> list[ev.Event]:
        return state.withdraw(amount, description)


class CloseAccountHandler:
    def __init__(self, writer: AccountWriter, replays: Replays) -> None:
        self._writer = writer
        self._replays = replays

    async def handle(self, command: CloseAccount) -> AccountView:
        writer = self._writer
        context = command.context
        fingerprint = None
        if context.command_id is not None:
            fingerprint = command_hash("close", command.account_id)
        async with writer.exclusive(command.account_id):
            state = await writer.load(command.account_id, context.actor)
            state, replayed = await self._replays.committed(state, context, fingerprint)
            if replayed is not None:
                return account_view(state)
            writer.check_version(state, context)
            # Closing needs a zero balance: decided on the balance with every queued append.
            state, events = await writer.decide(state, context.actor, AccountState.close)
            writer.check_version(state, context)
            committed, _ = await writer.queue(state, events, context, fingerprint)
        return account_view(await committed)
