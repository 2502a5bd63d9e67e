"""Checked by ``mypy --strict`` from test_mediator_typing.py (and run there too): the mediator's
types flow from a request's declaration to the caller without a cast."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, assert_type

from core.mediator import Mediator, Publisher, Sender
from core.mediator_builder import MediatorBuilder
from core.messages import Notification, Request, StreamRequest
from core.pipeline import Handled, RequestHandler
from core.publishing import ConcurrentPublisher

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Balance:
    account: str
    cents: int


@dataclass(frozen=True, slots=True)
class GetBalance(Request[Balance]):
    account: str = "acc-1"


@dataclass(frozen=True, slots=True)
class StatementLines(StreamRequest[str]):
    account: str = "acc-1"


@dataclass(frozen=True, slots=True)
class Deposited(Notification):
    account: str = "acc-1"


class GetBalanceHandler:
    async def handle(self, query: GetBalance) -> Balance:
        return Balance(query.account, 100)


class StatementHandler:
    async def handle(self, request: StatementLines) -> AsyncIterator[str]:
        yield f"{request.account}: opened"


class OnDeposited:
    async def handle(self, event: Deposited) -> None:
        return None


class Timing:
    """An open behavior: generic in the response, so it wraps any request."""

    async def handle(self, request: object, call_next: Callable[[], Awaitable[R]]) -> R:
        return await call_next()


class ZeroOnLookupError:
    async def handle(self, request: GetBalance, exc: LookupError) -> Handled[Balance] | None:
        return Handled(Balance(request.account, 0))


class Audit:
    async def execute(self, request: object, exc: Exception) -> None:
        return None


def build() -> Mediator:
    builder = MediatorBuilder(publisher=ConcurrentPublisher())
    builder.add_handler(GetBalance, GetBalanceHandler(), plugin="accounts")
    builder.add_stream_handler(StatementLines, StatementHandler, plugin="accounts")
    builder.add_notification_handler(Deposited, OnDeposited, plugin="accounts")
    builder.add_behavior(Timing(), plugin="infra")
    builder.add_exception_handler(
        LookupError, ZeroOnLookupError(), plugin="accounts", request_type=GetBalance
    )
    builder.add_exception_action(Exception, Audit(), plugin="infra")
    return builder.build()


async def main() -> Balance:
    mediator = build()
    balance: Balance = await mediator.send(GetBalance("acc-1"))
    assert_type(await mediator.send(GetBalance()), Balance)

    sender: Sender = mediator
    publisher: Publisher = mediator
    assert_type(await sender.send(GetBalance()), Balance)
    lines = [line async for line in sender.stream(StatementLines())]
    assert_type(lines, list[str])
    await publisher.publish(Deposited())

    handler: RequestHandler[GetBalance, Balance] = GetBalanceHandler()
    assert_type(await handler.handle(GetBalance()), Balance)
    return balance
