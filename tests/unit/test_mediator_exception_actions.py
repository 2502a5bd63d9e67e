"""Exception actions observe exceptions no exception handler handled; all that apply run, most
specific exception type first, and the exception still reaches the caller."""

from __future__ import annotations

import logging
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
    pass


@dataclass(frozen=True, slots=True)
class Deposit(Request[str]):
    pass


class Raising:
    async def handle(self, request: object) -> str:
        raise AccountClosed("closed on 1 May")


class Record:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def execute(self, request: object, exc: Exception) -> None:
        self.log.append(f"{self.name}:{exc}")


class Explode:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def execute(self, request: object, exc: Exception) -> None:
        self.log.append("explode")
        raise RuntimeError("metrics backend down")


def builder() -> MediatorBuilder:
    b = MediatorBuilder()
    b.add_handler(Withdraw, Raising(), plugin="accounts")
    b.add_handler(Deposit, Raising(), plugin="accounts")
    return b


async def test_every_applicable_action_runs_most_specific_first_then_the_error_propagates() -> None:
    log: list[str] = []
    b = builder()
    b.add_exception_action(Exception, Record("exception", log), plugin="p")
    b.add_exception_action(AccountError, Record("account-1", log), plugin="p")
    b.add_exception_action(KeyError, Record("key", log), plugin="p")
    b.add_exception_action(AccountClosed, Record("closed", log), plugin="p")
    b.add_exception_action(AccountError, Record("account-2", log), plugin="p")

    with pytest.raises(AccountClosed, match="closed on 1 May"):
        await b.build().send(Withdraw())

    assert log == [
        "closed:closed on 1 May",
        "account-1:closed on 1 May",
        "account-2:closed on 1 May",
        "exception:closed on 1 May",
    ]


async def test_actions_do_not_run_when_an_exception_handler_handled_the_exception() -> None:
    log: list[str] = []

    class Recover:
        async def handle(self, request: object, exc: AccountClosed) -> Handled[str] | None:
            return Handled("recovered")

    b = builder()
    b.add_exception_action(Exception, Record("action", log), plugin="p")
    b.add_exception_handler(AccountClosed, Recover(), plugin="p", request_type=Withdraw)
    mediator = b.build()

    assert await mediator.send(Withdraw()) == "recovered"
    assert log == []
    with pytest.raises(AccountClosed):
        await mediator.send(Deposit())  # the exception handler is bound to Withdraw only
    assert log == ["action:closed on 1 May"]


async def test_actions_bound_to_a_request_type_only_observe_that_type() -> None:
    log: list[str] = []
    b = builder()
    b.add_exception_action(Exception, Record("deposit", log), plugin="p", request_type=Deposit)
    mediator = b.build()

    with pytest.raises(AccountClosed):
        await mediator.send(Withdraw())
    assert log == []
    with pytest.raises(AccountClosed):
        await mediator.send(Deposit())
    assert log == ["deposit:closed on 1 May"]


async def test_a_failing_action_is_logged_and_noted_but_never_hides_the_original(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    b = builder()
    b.add_exception_action(AccountClosed, Explode(log), plugin="p")
    b.add_exception_action(AccountError, Record("after", log), plugin="p")

    with (
        caplog.at_level(logging.ERROR, logger="core.mediator"),
        pytest.raises(AccountClosed, match="closed on 1 May") as caught,
    ):
        await b.build().send(Withdraw())

    assert log == ["explode", "after:closed on 1 May"]  # the next action still ran
    assert caught.value.__notes__ == [
        "exception action Explode failed: RuntimeError('metrics backend down')"
    ]
    [record] = caplog.records
    assert record.getMessage().startswith("exception action Explode failed while observing")
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
