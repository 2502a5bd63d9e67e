"""The account aggregate: an immutable state, pure decisions that return new events, and
``evolve`` that folds one stored event into the state."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec

from core.records import EventRecord
from handlers.accounts import events as ev
from handlers.accounts.codec import decode_event
from handlers.accounts.errors import (
    AccountClosedError,
    BalanceLimitError,
    InsufficientFundsError,
    NonZeroBalanceError,
)
from handlers.accounts.money import MAX_MINOR_UNITS, check_amount, currency

__all__ = ["ACCOUNT_KIND", "COMMAND_MEMORY", "AccountState", "CommandMark", "account_stream"]

# How many recent command ids an account remembers for idempotent replays.
COMMAND_MEMORY: Final = 1000

Status = Literal["new", "open", "closed"]


def account_stream(account_id: str) -> str:
    return f"account-{account_id}"


class CommandMark(msgspec.Struct, frozen=True, array_like=True):
    """A command this account has applied: the hash of its content and its last event's version."""

    command_hash: str
    version: int


class AccountState(msgspec.Struct, frozen=True):
    id: str
    version: int = 0
    owner: str = ""
    currency: str = ""
    balance: int = 0
    status: Status = "new"
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    debited: frozenset[str] = frozenset()
    credited: frozenset[str] = frozenset()
    refunded: frozenset[str] = frozenset()
    commands: dict[str, CommandMark] = {}

    # ---- decisions: each checks the rules and returns the events; none changes the state ----

    def deposit(self, amount: int, description: str | None) -> list[ev.Event]:
        self._check_movement(amount)
        return [ev.MoneyDeposited(amount, self._credit(amount), description)]

    def withdraw(self, amount: int, description: str | None) -> list[ev.Event]:
        self._check_movement(amount)
        return [ev.MoneyWithdrawn(amount, self._debit(amount), description)]

    def debit_for_transfer(
        self, transfer_id: str, destination: str, amount: int, description: str | None
    ) -> list[ev.Event]:
        if transfer_id in self.debited:
            return []
        self._check_movement(amount)
        balance = self._debit(amount)
        return [ev.TransferDebited(transfer_id, destination, amount, balance, description)]

    def credit_for_transfer(
        self, transfer_id: str, source: str, amount: int, description: str | None
    ) -> list[ev.Event]:
        if transfer_id in self.credited:
            return []
        self._check_movement(amount)
        return [ev.TransferCredited(transfer_id, source, amount, self._credit(amount), description)]

    def refund_transfer(self, transfer_id: str, amount: int, reason: str) -> list[ev.Event]:
        # A refund returns money this account sent. It applies even if the account was closed in
        # the meantime (it reached zero while the transfer was in flight): money never vanishes.
        if transfer_id in self.refunded or transfer_id not in self.debited:
            return []
        return [ev.TransferRefunded(transfer_id, amount, self.balance + amount, reason)]

    def close(self) -> list[ev.Event]:
        self._check_open()
        if self.balance != 0:
            raise NonZeroBalanceError(self.id, self.balance)
        return [ev.AccountClosed()]

    def _check_open(self) -> None:
        if self.status == "closed":
            raise AccountClosedError(self.id)

    def _check_movement(self, amount: int) -> None:
        check_amount(amount)
        self._check_open()

    def _credit(self, amount: int) -> int:
        balance = self.balance + amount
        if balance > MAX_MINOR_UNITS:
            raise BalanceLimitError()
        return balance

    def _debit(self, amount: int) -> int:
        if amount > self.balance:
            raise InsufficientFundsError(self.id, self.balance, amount)
        return self.balance - amount


def open_account(
    account_id: str, owner: str, currency_code: str, initial_deposit: int | None
) -> list[ev.Event]:
    currency(currency_code)
    events: list[ev.Event] = [ev.AccountOpened(account_id, owner, currency_code)]
    if initial_deposit is not None:
        check_amount(initial_deposit, "initial_deposit")
        events.append(ev.MoneyDeposited(initial_deposit, initial_deposit, "initial deposit"))
    return events


def evolve(state: AccountState, record: EventRecord) -> AccountState:
    event = decode_event(record)
    changes: dict[str, object] = {"version": record.version}
    match event:
        case ev.AccountOpened(owner=owner, currency=code):
            changes.update(owner=owner, currency=code, status="open", opened_at=record.occurred_at)
        case ev.MoneyDeposited(balance_after=b) | ev.MoneyWithdrawn(balance_after=b):
            changes["balance"] = b
        case ev.TransferDebited(transfer_id=t, balance_after=b):
            changes.update(balance=b, debited=state.debited | {t})
        case ev.TransferCredited(transfer_id=t, balance_after=b):
            changes.update(balance=b, credited=state.credited | {t})
        case ev.TransferRefunded(transfer_id=t, balance_after=b):
            changes.update(balance=b, refunded=state.refunded | {t})
        case ev.AccountClosed():
            changes.update(status="closed", closed_at=record.occurred_at)
        case _:
            raise ValueError(f"{record.type} does not belong on an account stream")
    command_id = record.metadata.command_id
    if command_id is not None and record.metadata.command_hash is not None:
        commands = dict(state.commands)
        commands.pop(command_id, None)
        commands[command_id] = CommandMark(record.metadata.command_hash, record.version)
        while len(commands) > COMMAND_MEMORY:
            del commands[next(iter(commands))]
        changes["commands"] = commands
    return msgspec.structs.replace(state, **changes)


class _AccountKind:
    snapshot_schema = 1
    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder(AccountState)

    def initial(self, stream_id: str) -> AccountState:
        return AccountState(id=stream_id.removeprefix("account-"))

    def evolve(self, state: AccountState, record: EventRecord) -> AccountState:
        return evolve(state, record)

    def version(self, state: AccountState) -> int:
        return state.version

    def encode_snapshot(self, state: AccountState) -> bytes:
        return self._encoder.encode(state)

    def decode_snapshot(self, data: bytes) -> AccountState:
        return self._decoder.decode(data)


ACCOUNT_KIND: Final = _AccountKind()
