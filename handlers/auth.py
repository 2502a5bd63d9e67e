"""Authentication as a request: the HTTP layer sends ``Authenticate(token)`` through the mediator
like any other request, and the configured ``Authenticator`` port answers with the principal."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import BalanceError
from core.messages import Request
from core.ports import Authenticator, Principal

__all__ = [
    "Authenticate",
    "AuthenticateHandler",
    "AuthenticationError",
    "AuthenticatorUnavailableError",
    "MissingTokenError",
]


class AuthenticationError(BalanceError):
    """The bearer token cannot be trusted; ``reason`` says why, without echoing the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token: {reason}")
        self.reason = reason


class MissingTokenError(AuthenticationError):
    """No bearer token came with the request (RFC 6750: answered without an error code)."""

    def __init__(self) -> None:
        super().__init__("no bearer token in the Authorization header")


@dataclass(frozen=True, slots=True)
class Authenticate(Request[Principal]):
    token: str


class AuthenticateHandler:
    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def handle(self, request: Authenticate) -> Principal:
        return await self._authenticator.authenticate(request.token)


class AuthenticatorUnavailableError(BalanceError):
    """The token could not be checked now (for example the JWKS endpoint is down)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
