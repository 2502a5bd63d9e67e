"""Behaviors: the first registered is outermost; open ones wrap every request, bound ones wrap
their type and its subclasses only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from core.mediator_builder import MediatorBuilder
from core.messages import Request

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Deposit(Request[int]):
    amount: int


@dataclass(frozen=True, slots=True)
class BigDeposit(Deposit):
    pass


@dataclass(frozen=True, slots=True)
class Withdraw(Request[int]):
    amount: int


class Recording:
    """A behavior that records when it is entered and left."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def handle(self, request: object, call_next: Callable[[], Awaitable[R]]) -> R:
        self.log.append(f"{self.name}:in")
        response = await call_next()
        self.log.append(f"{self.name}:out")
        return response


class Handler:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def handle(self, request: Any) -> int:
        self.log.append(f"handler:{type(request).__name__}")
        return int(request.amount)


def builder_with_handlers(log: list[str]) -> MediatorBuilder:
    builder = MediatorBuilder()
    builder.add_handler(Deposit, Handler(log), plugin="accounts")
    builder.add_handler(BigDeposit, Handler(log), plugin="accounts")
    builder.add_handler(Withdraw, Handler(log), plugin="accounts")
    return builder


async def test_first_registered_behavior_is_outermost() -> None:
    log: list[str] = []
    builder = builder_with_handlers(log)
    for name in ("first", "second", "third"):
        builder.add_behavior(Recording(name, log), plugin="infra")

    assert await builder.build().send(Deposit(5)) == 5

    assert log == [
        "first:in",
        "second:in",
        "third:in",
        "handler:Deposit",
        "third:out",
        "second:out",
        "first:out",
    ]


async def test_bound_behaviors_apply_to_their_type_and_subclasses_in_registration_order() -> None:
    log: list[str] = []
    builder = builder_with_handlers(log)
    builder.add_behavior(Recording("open1", log), plugin="infra")
    builder.add_behavior(Recording("deposits", log), plugin="accounts", request_type=Deposit)
    builder.add_behavior(Recording("open2", log), plugin="infra")
    builder.add_behavior(Recording("withdrawals", log), plugin="accounts", request_type=Withdraw)
    mediator = builder.build()

    await mediator.send(BigDeposit(1))
    assert log == [
        "open1:in",
        "deposits:in",
        "open2:in",
        "handler:BigDeposit",
        "open2:out",
        "deposits:out",
        "open1:out",
    ]

    log.clear()
    await mediator.send(Withdraw(1))
    assert log == [
        "open1:in",
        "open2:in",
        "withdrawals:in",
        "handler:Withdraw",
        "withdrawals:out",
        "open2:out",
        "open1:out",
    ]


async def test_a_behavior_can_short_circuit_and_replace_the_response() -> None:
    log: list[str] = []

    class Refuse:
        async def handle(self, request: Deposit, call_next: Callable[[], Awaitable[int]]) -> int:
            log.append("refused")
            return -1

    class AddOne:
        async def handle(self, request: Deposit, call_next: Callable[[], Awaitable[int]]) -> int:
            return await call_next() + 1

    builder = builder_with_handlers(log)
    builder.add_behavior(AddOne(), plugin="p", request_type=Deposit)
    builder.add_behavior(Refuse(), plugin="p", request_type=BigDeposit)
    mediator = builder.build()

    assert await mediator.send(BigDeposit(10)) == 0  # Refuse's -1, plus one from AddOne
    assert log == ["refused"]
    assert await mediator.send(Deposit(10)) == 11
    assert log == ["refused", "handler:Deposit"]


async def test_a_behavior_factory_is_called_once_even_when_it_wraps_many_types() -> None:
    made: list[str] = []
    log: list[str] = []

    def factory() -> Recording:
        made.append("behavior")
        return Recording("b", log)

    builder = builder_with_handlers(log)
    builder.add_behavior(factory, plugin="infra")
    mediator = builder.build()
    await mediator.send(Deposit(1))
    await mediator.send(Withdraw(1))
    await mediator.send(Withdraw(1))

    assert made == ["behavior"]
    assert log.count("b:in") == 3
