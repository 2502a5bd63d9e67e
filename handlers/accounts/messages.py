"""The commands and queries of the accounts domain, sent through the mediator.

Amounts arrive as decimal text (``"500.00"``) and are parsed against the account's currency, so
a request never carries a float. ``actor`` is who asks; customers act on their own accounts,
tellers on any.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from core.auth import Principal
from core.messages import Request, StreamRequest
from handlers.accounts.account import account_stream
from handlers.accounts.ids import derived_id
from handlers.accounts.transfer import transfer_stream
from handlers.accounts.views import (
    AccountView,
    BalanceAt,
    FeedItem,
    Page,
    Receipt,
    Statement,
    TransferView,
)

__all__ = [
    "CloseAccount",
    "Command",
    "CommandContext",
    "Deposit",
    "GetAccount",
    "GetBalanceAt",
    "GetStatement",
    "GetTransfer",
    "ListAccounts",
    "OpenAccount",
    "Query",
    "ResumeTransfers",
    "Transfer",
    "WatchAccount",
    "Withdraw",
]

R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandContext:
    actor: Principal
    # Repeating a command with the same id returns the first result and writes nothing.
    command_id: str | None = None
    correlation_id: str | None = None
    # When set, the command applies only at this version and is never retried on a conflict.
    expected_version: int | None = None


class Command(Request[R_co]):
    """A request that changes state; behaviors bound to ``Command`` wrap every command.

    ``routing_stream`` is the stream whose writer must decide the command (``core.routing``):
    the account it acts on, or for a transfer its own record, whose writer runs it."""

    __slots__ = ()
    context: CommandContext

    @property
    def routing_stream(self) -> str | None:
        raise NotImplementedError(f"{type(self).__name__} does not name its routing stream")


class Query(Request[R_co]):
    """A request that only reads; ``actor`` is who asks."""

    __slots__ = ()
    actor: Principal


@dataclass(frozen=True, slots=True)
class OpenAccount(Command[AccountView]):
    currency: str
    context: CommandContext
    initial_deposit: str | None = None
    owner: str | None = None

    @property
    def keyed_id(self) -> str | None:
        """The account's id when the command carries an id: the same key opens the same
        account. Without one the handler draws a fresh id."""
        if self.context.command_id is None:
            return None
        return derived_id(self.context.actor.subject, self.context.command_id)

    @property
    def routing_stream(self) -> str | None:
        keyed = self.keyed_id
        return None if keyed is None else account_stream(keyed)


@dataclass(frozen=True, slots=True)
class Deposit(Command[Receipt]):
    account_id: str
    amount: str
    context: CommandContext
    description: str | None = None

    @property
    def routing_stream(self) -> str:
        return account_stream(self.account_id)


@dataclass(frozen=True, slots=True)
class Withdraw(Command[Receipt]):
    account_id: str
    amount: str
    context: CommandContext
    description: str | None = None

    @property
    def routing_stream(self) -> str:
        return account_stream(self.account_id)


@dataclass(frozen=True, slots=True)
class Transfer(Command[TransferView]):
    source: str
    destination: str
    amount: str
    context: CommandContext
    description: str | None = None

    @property
    def keyed_id(self) -> str | None:
        """The transfer's id when the command carries an id: the same key names the same
        transfer. Without one the handler draws a fresh id written here."""
        if self.context.command_id is None:
            return None
        return derived_id("transfer", self.context.actor.subject, self.context.command_id)

    @property
    def routing_stream(self) -> str | None:
        keyed = self.keyed_id
        return None if keyed is None else transfer_stream(keyed)


@dataclass(frozen=True, slots=True)
class CloseAccount(Command[AccountView]):
    account_id: str
    context: CommandContext

    @property
    def routing_stream(self) -> str:
        return account_stream(self.account_id)


@dataclass(frozen=True, slots=True)
class ResumeTransfers(Request[int]):
    """Finish every transfer left pending (after a crash); returns how many were resumed."""


@dataclass(frozen=True, slots=True)
class GetAccount(Query[AccountView]):
    account_id: str
    actor: Principal
    min_version: int = 0


@dataclass(frozen=True, slots=True)
class ListAccounts(Query[Page[AccountView]]):
    actor: Principal
    owner: str | None = None
    cursor: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class GetStatement(Query[Statement]):
    account_id: str
    actor: Principal
    start: datetime | None = None
    end: datetime | None = None
    cursor: str | None = None
    limit: int = 50
    min_version: int = 0


@dataclass(frozen=True, slots=True)
class GetBalanceAt(Query[BalanceAt]):
    account_id: str
    actor: Principal
    at: datetime


@dataclass(frozen=True, slots=True)
class GetTransfer(Query[TransferView]):
    transfer_id: str
    actor: Principal
    min_version: int = 0


@dataclass(frozen=True, slots=True)
class WatchAccount(StreamRequest[FeedItem]):
    """The account's movements after version ``after``, then each new one as it is projected:
    first ``Watching``, then ``Movement`` items in version order, and ``Closing`` last if the
    account is closed. It ends only when the account closes or the caller stops reading."""

    account_id: str
    actor: Principal
    after: int = 0
