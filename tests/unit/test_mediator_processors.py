"""Pre-processors run before every behavior; post-processors after every behavior returned, so
they see the response the caller gets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from core.mediator_builder import MediatorBuilder
from core.messages import Request


@dataclass(frozen=True, slots=True)
class Open(Request[str]):
    owner: str


@dataclass(frozen=True, slots=True)
class Close(Request[str]):
    owner: str


class Handler:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def handle(self, request: Open | Close) -> str:
        self.log.append("handler")
        return f"{type(request).__name__.lower()}:{request.owner}"


class Pre:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def process(self, request: object) -> None:
        self.log.append(f"pre:{self.name}")


class Post:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def process(self, request: object, response: str) -> None:
        self.log.append(f"post:{self.name}:{response}")


class Shout:
    """A behavior that changes the response on its way out."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def handle(self, request: object, call_next: Callable[[], Awaitable[str]]) -> str:
        self.log.append("behavior:in")
        response = await call_next()
        self.log.append("behavior:out")
        return response.upper()


def build(log: list[str], *, failing_pre: bool = False) -> MediatorBuilder:
    builder = MediatorBuilder()
    builder.add_handler(Open, Handler(log), plugin="accounts")
    builder.add_handler(Close, Handler(log), plugin="accounts")
    builder.add_behavior(Shout(log), plugin="infra")
    builder.add_pre_processor(Pre("a", log), plugin="infra")
    builder.add_post_processor(Post("a", log), plugin="infra")
    builder.add_pre_processor(Pre("b", log), plugin="infra")
    builder.add_post_processor(Post("b", log), plugin="infra")
    return builder


async def test_pre_processors_run_first_and_post_processors_see_the_final_response() -> None:
    log: list[str] = []

    assert await build(log).build().send(Open("ann")) == "OPEN:ANN"

    assert log == [
        "pre:a",
        "pre:b",
        "behavior:in",
        "handler",
        "behavior:out",
        "post:a:OPEN:ANN",
        "post:b:OPEN:ANN",
    ]


async def test_bound_processors_only_run_for_their_request_type() -> None:
    log: list[str] = []
    builder = build(log)
    builder.add_pre_processor(Pre("close-only", log), plugin="p", request_type=Close)
    builder.add_post_processor(Post("close-only", log), plugin="p", request_type=Close)
    mediator = builder.build()

    await mediator.send(Open("ann"))
    assert "pre:close-only" not in log
    assert not any(entry.startswith("post:close-only") for entry in log)

    log.clear()
    await mediator.send(Close("bob"))
    assert log[:3] == ["pre:a", "pre:b", "pre:close-only"]
    assert log[-1] == "post:close-only:CLOSE:BOB"


async def test_a_failing_pre_processor_stops_the_request_before_any_behavior() -> None:
    log: list[str] = []

    class Reject:
        async def process(self, request: object) -> None:
            log.append("pre:reject")
            raise PermissionError("not yours")

    builder = build(log)
    builder.add_pre_processor(Reject(), plugin="auth")

    with pytest.raises(PermissionError, match="not yours"):
        await builder.build().send(Open("ann"))
    assert log == ["pre:a", "pre:b", "pre:reject"]


async def test_post_processors_do_not_run_when_the_handler_fails() -> None:
    log: list[str] = []

    class Failing:
        async def handle(self, request: Open) -> str:
            raise RuntimeError("disk full")

    builder = MediatorBuilder()
    builder.add_handler(Open, Failing(), plugin="accounts")
    builder.add_pre_processor(Pre("a", log), plugin="infra")
    builder.add_post_processor(Post("a", log), plugin="infra")

    with pytest.raises(RuntimeError, match="disk full"):
        await builder.build().send(Open("ann"))
    assert log == ["pre:a"]
