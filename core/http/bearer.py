"""Bearer authentication for the HTTP layer: the token of the ``Authorization`` header, which
``ApiRequest.principal`` checks through the ``Authenticator`` port. A route that asks for the
principal is authenticated; one that does not (health) is not."""

from __future__ import annotations

from typing import Any

from litestar import Request

from core.auth import AuthenticationError, MissingTokenError

__all__ = ["bearer_token"]


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
