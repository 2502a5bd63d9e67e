"""Bearer authentication for the HTTP layer: take the token from the ``Authorization`` header and
send ``Authenticate`` through the mediator. The principal is a Litestar dependency, so a route
that declares ``principal: Principal`` is authenticated and one that does not (health) is not."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from core.mediator import Mediator
from core.ports import Principal
from handlers.auth import Authenticate, AuthenticationError, MissingTokenError

__all__ = ["bearer_token", "provide_principal"]


def bearer_token(request: Request[Any, Any, Any]) -> str:
    """The token of ``Authorization: Bearer <token>``; MissingTokenError when there is none."""
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() != "bearer":
                raise MissingTokenError()
            token = token.strip()
            if not token or " " in token:
                raise AuthenticationError("the Authorization header is not 'Bearer <token>'")
            return token
    raise MissingTokenError()


async def provide_principal(
    request: Request[Any, Any, Any], mediator: NamedDependency[Mediator]
) -> Principal:
    return await mediator.send(Authenticate(bearer_token(request)))
