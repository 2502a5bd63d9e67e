"""The order of the layers around one request type, outermost first:
exception actions → exception handlers → pre-processors → post-processors → behaviors → handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from core.mediator_builder import MediatorBuilder
from core.messages import Request
from core.pipeline import Handled


@dataclass(frozen=True, slots=True)
class Transfer(Request[str]):
    fail_in: str = ""  # which layer raises: "", "pre", "behavior", "handler", "post"


class Layer:
    """One object playing every role, each recording itself and raising when asked to."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def _visit(self, request: Transfer, where: str) -> None:
        self.log.append(where)
        if request.fail_in == where:
            raise ValueError(where)


class Handler(Layer):
    async def handle(self, request: Transfer) -> str:
        self._visit(request, "handler")
        return "done"


class Behavior(Layer):
    async def handle(self, request: Transfer, call_next: Callable[[], Awaitable[str]]) -> str:
        self._visit(request, "behavior")
        response = await call_next()
        self.log.append("behavior:out")
        return response


class Pre(Layer):
    async def process(self, request: Transfer) -> None:
        self._visit(request, "pre")


class Post(Layer):
    async def process(self, request: Transfer, response: str) -> None:
        self._visit(request, "post")


class Recover(Layer):
    async def handle(self, request: Transfer, exc: ValueError) -> Handled[str] | None:
        self.log.append(f"exception-handler:{exc}")
        return Handled(f"recovered from {exc}") if str(exc) != "handler" else None


class Observe(Layer):
    async def execute(self, request: Transfer, exc: ValueError) -> None:
        self.log.append(f"exception-action:{exc}")


def build(log: list[str]) -> MediatorBuilder:
    # Registered in an order unlike the composition order, to show that order is by layer.
    builder = MediatorBuilder()
    builder.add_exception_action(ValueError, Observe(log), plugin="p")
    builder.add_behavior(Behavior(log), plugin="p")
    builder.add_post_processor(Post(log), plugin="p")
    builder.add_exception_handler(ValueError, Recover(log), plugin="p")
    builder.add_pre_processor(Pre(log), plugin="p")
    builder.add_handler(Transfer, Handler(log), plugin="p")
    return builder


async def test_layers_run_in_composition_order_when_nothing_fails() -> None:
    log: list[str] = []

    assert await build(log).build().send(Transfer()) == "done"

    assert log == ["pre", "behavior", "handler", "behavior:out", "post"]


@pytest.mark.parametrize(
    ("fail_in", "expected"),
    [
        ("pre", ["pre", "exception-handler:pre"]),
        ("behavior", ["pre", "behavior", "exception-handler:behavior"]),
        (
            "post",
            ["pre", "behavior", "handler", "behavior:out", "post", "exception-handler:post"],
        ),
    ],
)
async def test_exceptions_from_every_inner_layer_reach_the_exception_handlers(
    fail_in: str, expected: list[str]
) -> None:
    log: list[str] = []

    assert await build(log).build().send(Transfer(fail_in)) == f"recovered from {fail_in}"

    assert log == expected  # handled, so no exception action ran


async def test_exception_actions_are_outermost_and_see_only_what_handlers_left() -> None:
    log: list[str] = []

    with pytest.raises(ValueError, match=r"^handler$"):
        await build(log).build().send(Transfer("handler"))

    assert log == [
        "pre",
        "behavior",
        "handler",
        "exception-handler:handler",
        "exception-action:handler",
    ]
