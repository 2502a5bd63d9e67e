"""The app's request class: a JSON body (``core.http.body``), the caller, and the command headers.

Route handlers take ``request: ApiRequest`` and ask it for what they send through the mediator:

- ``request.mediator``, the application's mediator;
- ``await request.principal()``, the caller, authenticated from the bearer token;
- ``request.idempotency_key()`` and ``request.expected_version()``, the command's headers
  (``core.http.headers``), and ``request.request_id``, the correlation id.

Authentication happens here, at the edge, once per request, through the ``Authenticator`` port:
the message a route sends carries the verified ``Principal``, so the mediator's pipeline (its
logging, scope checks, retries) runs once per request, for the request itself. A bearer token is
a fact of HTTP, not a request of the domain.

Litestar's dependency injection could hand over the same values, but a route with any dependency
pays for resolving it on every request (a signature model per dependency and a cleanup group):
about 13 µs, a twelfth of a deposit's time on the event loop in-process (``python -m bench.ab
bench/variants/dependency_routes.py``). Plugin routes may still declare the ``mediator`` and
``principal`` dependencies (``api.app``); ``provide_principal`` below is the latter.
"""

from __future__ import annotations

from core.auth import Authenticator, Principal
from core.http.bearer import bearer_token
from core.http.body import JsonRequest
from core.http.headers import expected_version, idempotency_key
from core.http.request_id import current_request_id
from core.mediator import Mediator

__all__ = ["AUTHENTICATOR_STATE_KEY", "MEDIATOR_STATE_KEY", "ApiRequest", "provide_principal"]

# Where ``create_app`` puts the mediator and the authenticator in the app's state.
MEDIATOR_STATE_KEY = "mediator"
AUTHENTICATOR_STATE_KEY = "authenticator"


class ApiRequest(JsonRequest):
    _principal: Principal | None = None

    @property
    def mediator(self) -> Mediator:
        mediator: Mediator = self.app.state[MEDIATOR_STATE_KEY]
        return mediator

    async def principal(self) -> Principal:
        """The caller; ``AuthenticationError`` (401) without a valid bearer token."""
        if self._principal is None:
            authenticator: Authenticator = self.app.state[AUTHENTICATOR_STATE_KEY]
            self._principal = await authenticator.authenticate(bearer_token(self))
        return self._principal

    def idempotency_key(self) -> str | None:
        """``Idempotency-Key``: a command's id (``InvalidHeaderError`` when malformed)."""
        return idempotency_key(self)

    def expected_version(self) -> int | None:
        """``If-Match``: the version a command expects (``InvalidHeaderError`` when malformed)."""
        return expected_version(self)

    @property
    def request_id(self) -> str | None:
        """``X-Request-ID``, or the one the app made up: a command's correlation id."""
        return current_request_id()


async def provide_principal(request: ApiRequest) -> Principal:
    """The ``principal`` dependency, for plugin routes that declare it."""
    return await request.principal()
