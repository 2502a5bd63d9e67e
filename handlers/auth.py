"""Authentication as a request: the HTTP layer sends ``Authenticate(token)`` through the mediator
like any other request, and the configured ``Authenticator`` port answers with the principal."""

from __future__ import annotations

from dataclasses import dataclass

from core.auth import Authenticator, Principal
from core.messages import Request

__all__ = ["Authenticate", "AuthenticateHandler"]


@dataclass(frozen=True, slots=True)
class Authenticate(Request[Principal]):
    token: str


class AuthenticateHandler:
    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def handle(self, request: Authenticate) -> Principal:
        return await self._authenticator.authenticate(request.token)
