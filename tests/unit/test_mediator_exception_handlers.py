"""Exception handlers: the most specific exception type is tried first, the first ``Handled``
wins, and an unhandled exception is re-raised as it was."""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass

import pytest

from core.mediator_builder import MediatorBuilder
from core.messages import Request
from core.pipeline import Handled


class AccountError(Exception):
    pass


class AccountClosed(AccountError):
    pass


@dataclass(frozen=True, slots=True)
class Withdraw(Request[str]):
    raise_: type[BaseException] = AccountClosed


@dataclass(frozen=True, slots=True)
class UrgentWithdraw(Withdraw):
    pass


@dataclass(frozen=True, slots=True)
class Deposit(Request[str]):
    raise_: type[BaseException] = AccountClosed


class Raising:
    async def handle(self, request: Withdraw | Deposit) -> str:
        raise request.raise_("from handler")


class Answer:
    """Answers with ``response`` (or passes with None), recording that it was asked."""

    def __init__(self, name: str, log: list[str], response: str | None) -> None:
        self.name = name
        self.log = log
        self.response = response

    async def handle(self, request: object, exc: Exception) -> Handled[str] | None:
        self.log.append(self.name)
        return None if self.response is None else Handled(self.response)


def builder() -> MediatorBuilder:
    b = MediatorBuilder()
    b.add_handler(Withdraw, Raising(), plugin="accounts")
    b.add_handler(UrgentWithdraw, Raising(), plugin="accounts")
    b.add_handler(Deposit, Raising(), plugin="accounts")
    return b


async def test_the_most_specific_exception_type_wins_whatever_the_registration_order() -> None:
    log: list[str] = []
    b = builder()
    b.add_exception_handler(Exception, Answer("exception", log, "generic"), plugin="p")
    b.add_exception_handler(AccountError, Answer("account", log, "account"), plugin="p")
    b.add_exception_handler(AccountClosed, Answer("closed", log, "closed"), plugin="p")

    assert await b.build().send(Withdraw()) == "closed"
    assert log == ["closed"]


async def test_none_passes_to_the_next_handler_of_the_same_type_then_to_less_specific() -> None:
    log: list[str] = []
    b = builder()
    b.add_exception_handler(AccountError, Answer("account", log, "account"), plugin="p")
    b.add_exception_handler(AccountClosed, Answer("closed-1", log, None), plugin="p")
    b.add_exception_handler(AccountClosed, Answer("closed-2", log, None), plugin="p")
    b.add_exception_handler(AccountError, Answer("account-late", log, "late"), plugin="p")

    assert await b.build().send(Withdraw()) == "account"
    assert log == ["closed-1", "closed-2", "account"]


async def test_handlers_for_other_exception_types_are_not_asked() -> None:
    log: list[str] = []
    b = builder()
    b.add_exception_handler(KeyError, Answer("key", log, "key"), plugin="p")
    b.add_exception_handler(AccountError, Answer("account", log, "account"), plugin="p")

    assert await b.build().send(Withdraw(raise_=AccountError)) == "account"
    with pytest.raises(LookupError):
        await b.build().send(Withdraw(raise_=LookupError))  # KeyError's base: not handled
    assert log == ["account"]


async def test_handlers_bound_to_a_request_type_apply_to_it_and_its_subclasses_only() -> None:
    log: list[str] = []
    b = builder()
    b.add_exception_handler(
        AccountClosed, Answer("withdraw", log, "withdraw"), plugin="p", request_type=Withdraw
    )
    mediator = b.build()

    assert await mediator.send(UrgentWithdraw()) == "withdraw"
    with pytest.raises(AccountClosed):
        await mediator.send(Deposit())
    assert log == ["withdraw"]


async def test_unhandled_exception_is_reraised_with_its_traceback() -> None:
    log: list[str] = []
    b = builder()
    b.add_exception_handler(AccountError, Answer("passes", log, None), plugin="p")

    with pytest.raises(AccountClosed, match="from handler") as caught:
        await b.build().send(Withdraw())

    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert frames[-1] == "handle"  # Raising.handle, where it was raised
    assert log == ["passes"]
    assert caught.value.__context__ is None


async def test_an_exception_raised_by_an_exception_handler_propagates() -> None:
    class Translate:
        async def handle(self, request: object, exc: AccountClosed) -> Handled[str] | None:
            raise LookupError("account gone") from exc

    b = builder()
    b.add_exception_handler(AccountClosed, Translate(), plugin="p")

    with pytest.raises(LookupError, match="account gone") as caught:
        await b.build().send(Withdraw())
    assert isinstance(caught.value.__cause__, AccountClosed)


async def test_cancellation_is_not_offered_to_exception_handlers() -> None:
    log: list[str] = []
    b = builder()
    b.add_exception_handler(Exception, Answer("exception", log, "swallowed"), plugin="p")

    with pytest.raises(asyncio.CancelledError):
        await b.build().send(Withdraw(raise_=asyncio.CancelledError))
    assert log == []
