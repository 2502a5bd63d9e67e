"""The app's request class: a JSON body (``api.body``), and the caller.

Route handlers take ``request: ApiRequest`` and ask it for what they send through the mediator:

- ``request.mediator``, the application's mediator;
- ``await request.principal()``, the caller, authenticated from the bearer token;
- ``await request.command_context(versioned=...)``, the caller plus the command's headers
  (``api.dependencies``).

Litestar's dependency injection could hand over the same values, but a route with any dependency
pays for resolving it on every request (a signature model per dependency and a cleanup group):
about 13 µs, a twelfth of a deposit's time on the event loop in-process (``python -m bench.ab
bench/variants/dependency_routes.py``). Plugin routes may still declare the ``mediator`` and
``principal`` dependencies (``api.app``); ``provide_principal`` below is the latter.
"""

from __future__ import annotations

from api.auth import bearer_token
from api.body import JsonRequest
from api.dependencies import expected_version, idempotency_key
from api.observability import current_request_id
from core.mediator import Mediator
from core.ports import Principal
from handlers.accounts.requests import CommandContext
from handlers.auth import Authenticate

__all__ = ["MEDIATOR_STATE_KEY", "ApiRequest", "provide_principal"]

# Where ``create_app`` puts the mediator in the app's state.
MEDIATOR_STATE_KEY = "mediator"


class ApiRequest(JsonRequest):
    @property
    def mediator(self) -> Mediator:
        mediator: Mediator = self.app.state[MEDIATOR_STATE_KEY]
        return mediator

    async def principal(self) -> Principal:
        """The caller; ``AuthenticationError`` (401) without a valid bearer token."""
        return await self.mediator.send(Authenticate(bearer_token(self)))

    async def command_context(self, *, versioned: bool = False) -> CommandContext:
        """The caller, ``Idempotency-Key`` as the command id and ``X-Request-ID`` as the
        correlation id; with ``versioned``, also ``If-Match`` as the expected version (for
        commands on one account)."""
        principal = await self.principal()
        return CommandContext(
            actor=principal,
            command_id=idempotency_key(self),
            correlation_id=current_request_id(),
            expected_version=expected_version(self) if versioned else None,
        )


async def provide_principal(request: ApiRequest) -> Principal:
    """The ``principal`` dependency, for plugin routes that declare it."""
    return await request.principal()
