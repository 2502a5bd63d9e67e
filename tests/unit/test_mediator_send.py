"""send: a request reaches its one handler, built once, and the response comes back."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from core.mediator_builder import MediatorBuilder
from core.messages import Request


@dataclass(frozen=True, slots=True)
class Double(Request[int]):
    value: int


@dataclass(frozen=True, slots=True)
class Greet(Request[str]):
    name: str


class DoubleHandler:
    async def handle(self, request: Double) -> int:
        return request.value * 2


class GreetHandler:
    async def handle(self, request: Greet) -> str:
        return f"hello {request.name}"


async def test_send_returns_the_handlers_response() -> None:
    builder = MediatorBuilder()
    builder.add_handler(Double, DoubleHandler(), plugin="maths")
    builder.add_handler(Greet, GreetHandler(), plugin="words")
    mediator = builder.build()

    assert await mediator.send(Double(21)) == 42
    assert await mediator.send(Greet("ann")) == "hello ann"


async def test_a_class_is_a_factory_and_is_instantiated_once_at_build() -> None:
    built: list[CountingHandler] = []

    class CountingHandler:
        def __init__(self) -> None:
            built.append(self)

        async def handle(self, request: Double) -> int:
            return id(self)

    builder = MediatorBuilder()
    builder.add_handler(Double, CountingHandler, plugin="maths")
    assert built == []
    mediator = builder.build()
    assert len(built) == 1

    first = await mediator.send(Double(1))
    second = await mediator.send(Double(2))
    assert first == second == id(built[0])
    assert len(built) == 1


async def test_a_zero_argument_callable_is_a_factory() -> None:
    calls: list[str] = []

    def make_handler() -> DoubleHandler:
        calls.append("made")
        return DoubleHandler()

    builder = MediatorBuilder()
    builder.add_handler(Double, make_handler, plugin="maths")
    mediator = builder.build()

    assert await mediator.send(Double(4)) == 8
    assert await mediator.send(Double(5)) == 10
    assert calls == ["made"]


async def test_a_request_with_only_a_handler_goes_straight_to_handle() -> None:
    callers: list[str] = []

    class WhoCalledMe:
        async def handle(self, request: Double) -> int:
            frame = inspect.currentframe()
            assert frame is not None
            assert frame.f_back is not None
            callers.append(frame.f_back.f_code.co_qualname)
            return 0

    builder = MediatorBuilder()
    builder.add_handler(Double, WhoCalledMe(), plugin="maths")
    await builder.build().send(Double(1))

    assert callers == ["Mediator.send"]


async def test_registrations_after_build_do_not_change_the_built_mediator() -> None:
    builder = MediatorBuilder()
    builder.add_handler(Double, DoubleHandler(), plugin="maths")
    mediator = builder.build()

    class Negate:
        async def handle(self, request: Double, call_next: object) -> int:
            return -1

    builder.add_behavior(Negate(), plugin="late")

    assert await mediator.send(Double(3)) == 6
    assert await builder.build().send(Double(3)) == -1
