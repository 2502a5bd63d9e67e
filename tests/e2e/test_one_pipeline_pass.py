"""One HTTP request, one pass through the mediator's pipeline: the caller is authenticated at the
edge, through the Authenticator port, and the request that reaches the pipeline is the command or
query itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from core.hookspecs import hookimpl
from core.registry import Registry
from tests.e2e.conftest import AppFactory, problem

R = TypeVar("R")


class Seen:
    """A plugin whose behavior records the type of every request the mediator handles."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def handle(self, request: Any, call_next: Callable[[], Awaitable[R]]) -> R:
        self.requests.append(type(request).__name__)
        return await call_next()

    @hookimpl
    def balance_register(self, registry: Registry) -> None:
        registry.behavior(self)


async def test_a_command_and_a_query_each_pass_the_pipeline_once(make_api: AppFactory) -> None:
    seen = Seen()
    async with make_api(extra_plugins={"seen": seen}) as api:
        account = (await api.open())["id"]
        seen.requests.clear()

        deposited = await api.move("deposits", account, "5.00")
        assert deposited.status_code == 201, deposited.text
        assert seen.requests == ["Deposit"]

        seen.requests.clear()
        read = await api.account(account, min_version=deposited.json()["version"])
        assert read.status_code == 200, read.text
        assert seen.requests == ["GetAccount"]


async def test_an_unauthenticated_request_never_reaches_the_pipeline(
    make_api: AppFactory,
) -> None:
    seen = Seen()
    async with make_api(extra_plugins={"seen": seen}) as api:
        seen.requests.clear()
        response = await api.call("POST", "/accounts", as_=None, json={"currency": "EUR"})
        problem(response, 401, "missing-token")
        assert seen.requests == []
