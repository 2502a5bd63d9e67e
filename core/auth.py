"""Who is calling, the port that says so, and the errors of authentication and authorization.

The shell authenticates each HTTP request once, through the ``Authenticator`` port; requests
then carry the ``Principal``, and handlers check its scopes and roles.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from core.errors import BalanceError

__all__ = [
    "AuthenticationError",
    "Authenticator",
    "AuthenticatorUnavailableError",
    "ForbiddenError",
    "MissingTokenError",
    "PeerCredentials",
    "Principal",
]


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the token's subject, its OAuth scopes and roles."""

    subject: str
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def has_role(self, role: str) -> bool:
        return role in self.roles


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> Principal:
        """The principal the bearer token names; raises ``AuthenticationError`` otherwise."""
        ...


class PeerCredentials(Protocol):
    """What the instances of one deployment share to recognise each other's messages (a step of
    a transfer sent to the instance that writes an account). Offered by the authenticator's
    plugin when its key material is shared by every instance (the jwt plugin: a key derived from
    the JWT secret); absent otherwise, and then no instance sends another such a message."""

    def sign(self, message: bytes) -> str:
        """A signature of ``message`` that ``verify`` accepts at any instance of the deployment."""
        ...

    def verify(self, message: bytes, signature: str) -> bool:
        """Whether ``signature`` was made by ``sign`` for exactly ``message``."""
        ...


class AuthenticationError(BalanceError):
    """The bearer token cannot be trusted; ``reason`` says why, without echoing the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token: {reason}")
        self.reason = reason


class MissingTokenError(AuthenticationError):
    """No bearer token came with the request (RFC 6750: answered without an error code)."""

    def __init__(self) -> None:
        super().__init__("no bearer token in the Authorization header")


class AuthenticatorUnavailableError(BalanceError):
    """The token could not be checked now (for example the JWKS endpoint is down)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ForbiddenError(BalanceError):
    """The caller is known but its token lacks the scope this request needs."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this request needs the scope {scope!r}")
        self.scope = scope
