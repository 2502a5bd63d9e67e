"""Registration errors: a missing handler at dispatch, a second handler at build, and malformed
registrations as soon as they are made."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from core.errors import BalanceError, DuplicateHandlerError, HandlerNotFoundError
from core.mediator_builder import MediatorBuilder
from core.messages import Request, StreamRequest


@dataclass(frozen=True, slots=True)
class GetBalance(Request[int]):
    account: str


@dataclass(frozen=True, slots=True)
class GetSpecialBalance(GetBalance):
    pass


@dataclass(frozen=True, slots=True)
class Unhandled(Request[None]):
    pass


@dataclass(frozen=True, slots=True)
class ListBalances(StreamRequest[int]):
    pass


class BalanceHandler:
    async def handle(self, request: GetBalance) -> int:
        return 100


class ListHandler:
    async def handle(self, request: ListBalances) -> AsyncIterator[int]:
        yield 1


async def test_send_without_a_handler_names_the_request_type() -> None:
    mediator = MediatorBuilder().build()

    with pytest.raises(HandlerNotFoundError) as caught:
        await mediator.send(Unhandled())

    qualified = f"{__name__}.Unhandled"
    assert str(caught.value) == f"no handler registered for request type {qualified}"
    assert caught.value.request_type is Unhandled
    assert isinstance(caught.value, BalanceError)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_a_subclass_does_not_inherit_its_base_request_types_handler() -> None:
    builder = MediatorBuilder()
    builder.add_handler(GetBalance, BalanceHandler(), plugin="accounts")
    mediator = builder.build()

    assert await mediator.send(GetBalance("a")) == 100
    with pytest.raises(HandlerNotFoundError, match=r"\.GetSpecialBalance$"):
        await mediator.send(GetSpecialBalance("a"))


def test_stream_without_a_handler_raises_at_the_call() -> None:
    mediator = MediatorBuilder().build()

    with pytest.raises(HandlerNotFoundError, match=re.escape(f"{__name__}.ListBalances")):
        mediator.stream(ListBalances())


def test_two_handlers_for_one_request_type_fail_at_build_naming_both_plugins() -> None:
    builder = MediatorBuilder()
    builder.add_handler(GetBalance, BalanceHandler(), plugin="accounts")
    builder.add_handler(GetBalance, BalanceHandler, plugin="audit")  # accepted until build

    with pytest.raises(DuplicateHandlerError) as caught:
        builder.build()

    assert str(caught.value) == (
        f"request type {__name__}.GetBalance has 2 handlers, registered by plugins "
        "'accounts', 'audit'; a request must have exactly one handler"
    )
    assert caught.value.request_type is GetBalance
    assert caught.value.plugins == ("accounts", "audit")


def test_two_stream_handlers_for_one_stream_request_type_fail_at_build() -> None:
    builder = MediatorBuilder()
    builder.add_stream_handler(ListBalances, ListHandler(), plugin="reports")
    builder.add_stream_handler(ListBalances, ListHandler(), plugin="exports")

    with pytest.raises(DuplicateHandlerError, match="plugins 'reports', 'exports'"):
        builder.build()


def test_no_factory_runs_when_build_refuses_a_duplicate() -> None:
    built: list[str] = []

    def factory() -> BalanceHandler:
        built.append("x")
        return BalanceHandler()

    builder = MediatorBuilder()
    builder.add_handler(GetBalance, factory, plugin="accounts")
    builder.add_handler(GetBalance, factory, plugin="accounts")

    with pytest.raises(DuplicateHandlerError, match="plugins 'accounts', 'accounts'"):
        builder.build()
    assert built == []


def test_message_types_are_checked_when_registered() -> None:
    builder = MediatorBuilder()
    with pytest.raises(TypeError, match="request_type must be a subclass of Request"):
        builder.add_handler(ListBalances, BalanceHandler(), plugin="p")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="request_type must be a subclass of StreamRequest"):
        builder.add_stream_handler(GetBalance, ListHandler(), plugin="p")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="notification_type must be a subclass of Notification"):
        builder.add_notification_handler(GetBalance, BalanceHandler(), plugin="p")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exception_type must be a subclass of Exception"):
        builder.add_exception_action(KeyboardInterrupt, object(), plugin="p")  # type: ignore[arg-type,type-var]


def test_a_component_without_its_method_fails_at_build_naming_the_plugin() -> None:
    class NotAHandler:
        async def run(self, request: GetBalance) -> int:
            return 0

    builder = MediatorBuilder()
    builder.add_handler(GetBalance, NotAHandler, plugin="broken")  # type: ignore[arg-type]

    with pytest.raises(
        TypeError, match=r"plugin 'broken' registered .*NotAHandler.*: no handle\(\)"
    ):
        builder.build()


def test_a_failing_factory_propagates_with_a_note_naming_the_plugin() -> None:
    def factory() -> BalanceHandler:
        raise LookupError("no database configured")

    builder = MediatorBuilder()
    builder.add_handler(GetBalance, factory, plugin="accounts")

    with pytest.raises(LookupError, match="no database configured") as caught:
        builder.build()
    assert any("registered by plugin 'accounts'" in note for note in caught.value.__notes__)
