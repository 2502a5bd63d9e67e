"""B: the deposit route as it was before ``ApiRequest`` (commit 468d405), with the mediator and the
command context as Litestar dependencies. ``python -m bench.ab bench/variants/dependency_routes.py``
gave B - A = +13.2 µs per deposit (B higher in 76 of 80 rounds) on 2026-11-25."""

from __future__ import annotations

from typing import Any

import litestar
from litestar import Request, Response, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

import api.app
import handlers.accounts.plugin
from core.http.headers import etag
from core.http.request import ApiRequest
from core.mediator import Mediator
from handlers.accounts.messages import CommandContext, Deposit
from handlers.accounts.web.accounts import AccountController
from handlers.accounts.web.params import command_context
from handlers.accounts.web.schemas import MovementIn, MovementOut, movement_out


async def provide_versioned_context(
    request: Request[Any, Any, Any], mediator: NamedDependency[Mediator]
) -> CommandContext:
    assert isinstance(request, ApiRequest)
    return await command_context(request, versioned=True)


class WithDependencies(AccountController):
    @post("/{account_id:str}/deposits")
    async def deposit(
        self,
        account_id: FromPath[str],
        data: JSONBody[MovementIn],
        mediator: NamedDependency[Mediator],
        versioned_context: NamedDependency[CommandContext],
    ) -> Response[MovementOut]:
        command = Deposit(account_id, data.amount, versioned_context, data.description)
        receipt = await mediator.send(command)
        movement = receipt.movement
        return Response(
            movement_out(movement, receipt.currency),
            status_code=201,
            headers={"ETag": etag(movement.version)},
        )


class WithContextDependency(litestar.Litestar):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["dependencies"] = {
            **kwargs["dependencies"],
            "versioned_context": Provide(provide_versioned_context),
        }
        super().__init__(*args, **kwargs)


def patch() -> None:
    vars(api.app)["Litestar"] = WithContextDependency
    vars(handlers.accounts.plugin)["AccountController"] = WithDependencies
