"""stream: the one stream handler's items, through stream behaviors (first registered is
outermost)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from core.mediator_builder import MediatorBuilder
from core.messages import StreamRequest


@dataclass(frozen=True, slots=True)
class Statement(StreamRequest[int]):
    count: int


@dataclass(frozen=True, slots=True)
class YearlyStatement(Statement):
    pass


@dataclass(frozen=True, slots=True)
class Audit(StreamRequest[str]):
    pass


class StatementHandler:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def handle(self, request: Statement) -> AsyncIterator[int]:
        for line in range(request.count):
            self.log.append(f"handler:{line}")
            yield line


class AuditHandler:
    async def handle(self, request: Audit) -> AsyncIterator[str]:
        yield "audited"


class Tag:
    """Records each item as it passes, then passes it on unchanged."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def handle(
        self, request: object, call_next: Callable[[], AsyncIterator[int]]
    ) -> AsyncIterator[int]:
        self.log.append(f"{self.name}:start")
        async for item in call_next():
            self.log.append(f"{self.name}:{item}")
            yield item
        self.log.append(f"{self.name}:end")


class Times10:
    async def handle(
        self, request: Statement, call_next: Callable[[], AsyncIterator[int]]
    ) -> AsyncIterator[int]:
        async for item in call_next():
            yield item * 10


def builder(log: list[str]) -> MediatorBuilder:
    b = MediatorBuilder()
    b.add_stream_handler(Statement, StatementHandler(log), plugin="reports")
    b.add_stream_handler(YearlyStatement, StatementHandler(log), plugin="reports")
    b.add_stream_handler(Audit, AuditHandler(), plugin="reports")
    return b


async def test_stream_yields_the_handlers_items_lazily() -> None:
    log: list[str] = []
    items = builder(log).build().stream(Statement(3))
    assert log == []  # nothing runs until iterated

    assert [item async for item in items] == [0, 1, 2]
    assert log == ["handler:0", "handler:1", "handler:2"]


async def test_first_registered_stream_behavior_is_outermost() -> None:
    log: list[str] = []
    b = builder(log)
    b.add_stream_behavior(Tag("outer", log), plugin="p")
    b.add_stream_behavior(Tag("inner", log), plugin="p")

    assert [item async for item in b.build().stream(Statement(2))] == [0, 1]
    assert log == [
        "outer:start",
        "inner:start",
        "handler:0",
        "inner:0",
        "outer:0",
        "handler:1",
        "inner:1",
        "outer:1",
        "inner:end",
        "outer:end",
    ]


async def test_bound_stream_behaviors_apply_to_their_type_and_subclasses_only() -> None:
    b = builder([])
    b.add_stream_behavior(Times10(), plugin="p", request_type=Statement)
    mediator = b.build()

    assert [item async for item in mediator.stream(YearlyStatement(3))] == [0, 10, 20]
    assert [item async for item in mediator.stream(Audit())] == ["audited"]
