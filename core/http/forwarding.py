"""Forwarding a command to the instance that writes its stream, at the HTTP edge.

When the mediator refuses a command with ``OwnedElsewhereError`` (``core.routing``: before
deciding, or from the store's append, with nothing written), ``send_or_forward`` re-issues the
original HTTP request to the owner's advertised URL and answers with the owner's response as it
came: status, body, ``ETag``, ``Location``, ``Retry-After``. Sent on: the method, path and query,
the body, ``Authorization`` (the owner authenticates the real caller again and trusts nothing
this instance concluded), ``Idempotency-Key``, ``If-Match``, ``Content-Type``, the request id,
and ``Balance-Forward-Hops``, how many times the request was forwarded already.

Forwarding rather than a redirect: a client following a 307 to another origin drops the
``Authorization`` header (httpx, browsers, curl), so the owner would answer 401; and the
instances' addresses are internal ones, which clients need not reach.

A request forwarded ``max_hops`` times is not forwarded again (instances that disagree about
an owner, while a partition moves): it is answered 503 ``store-unavailable`` with
``Retry-After``, as is a request whose owner cannot be reached or does not answer within the
timeout. In the last case the owner may have executed the command and its answer was lost on
the way back: a client that retries with the same ``Idempotency-Key`` gets the first result,
and nothing is written twice. Without a key a retry may apply the command again.

The hop goes over aiohttp: one session, created on the first forward and closed with the app,
whose connector keeps a keep-alive pool of at most ``PEER_CONNECTIONS`` connections per owner.
It sends only what it is given (no cookie jar, no ``User-Agent``, no ``Content-Type`` of its
own) and keeps the caller's path as written (percent-escapes not re-quoted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final, TypeVar
from urllib.parse import quote

import aiohttp
from litestar import Request, Response
from yarl import URL

from core.errors import OwnedElsewhereError, StoreUnavailableError
from core.http.problems import InvalidHeaderError
from core.http.request import ApiRequest
from core.http.request_id import current_request_id
from core.messages import Request as Message

__all__ = [
    "FORWARDER_STATE_KEY",
    "HOPS_HEADER",
    "KEEP_ALIVE_S",
    "PEER_CONNECTIONS",
    "ForwardLimitError",
    "Forwarder",
    "OwnerUnreachableError",
    "send_or_forward",
]

R = TypeVar("R")
T = TypeVar("T")

# Where ``create_app`` puts the app's forwarder in the app's state.
FORWARDER_STATE_KEY: Final = "forwarder"
HOPS_HEADER: Final = "Balance-Forward-Hops"
# Connections open to each owner at most: requests beyond them wait for one to be free.
PEER_CONNECTIONS: Final = 100
# An idle connection to an owner is not used again after this many seconds: less than the
# owner's own idle timeout (uvicorn's 5 s), so this side lets it go first and never sends a
# command on a connection the owner is closing (a POST is not retried on another).
KEEP_ALIVE_S: Final = 2.0
# Headers aiohttp would add of its own; the owner gets the caller's, or none.
_NOT_ADDED: Final = ("User-Agent", "Content-Type")
_HOPS_KEY: Final = HOPS_HEADER.lower().encode()
# The caller's headers the owner needs to take the request as the caller sent it.
_SENT_ON: Final = frozenset(
    {b"authorization", b"content-type", b"idempotency-key", b"if-match", b"accept"}
)
# Not passed back: hop-by-hop headers, the ones this app sets itself (the length, the request
# id, which the owner echoes and this app's middleware adds), and the owner's date and server.
_NOT_PASSED_BACK: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-encoding",
        "content-length",
        "content-type",
        "date",
        "server",
        "x-request-id",
    }
)


class OwnerUnreachableError(StoreUnavailableError):
    """The instance that writes the stream did not answer a forwarded command (refused the
    connection, broke it, or timed out). The command may or may not have been executed there;
    retrying with the same ``Idempotency-Key`` is safe. The message names no internal address:
    the log has it, in the error's cause."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(
            f"the instance that writes stream {stream_id!r} did not answer; retry with the same "
            "Idempotency-Key"
        )
        self.stream_id = stream_id


class ForwardLimitError(StoreUnavailableError):
    """A command was forwarded ``hops`` times without reaching the instance that writes its
    stream: the instances disagree about its owner while it changes hands. Nothing was
    written; retry shortly."""

    def __init__(self, stream_id: str, hops: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is changing hands: the command was forwarded {hops} times "
            "without reaching its writer; retry shortly"
        )
        self.stream_id = stream_id
        self.hops = hops


def forward_hops(request: Request[Any, Any, Any]) -> int:
    """How many times ``request`` was forwarded already (``Balance-Forward-Hops``, else 0)."""
    for key, value in request.scope["headers"]:
        if key == _HOPS_KEY:
            if value.isdigit() and len(value) <= 3:
                return int(value)
            raise InvalidHeaderError(HOPS_HEADER, "must be a whole number below 1000")
    return 0


class Forwarder:
    """Re-issues requests to the instance that writes their stream, over one session whose
    connector keeps a pool per owner (``PEER_CONNECTIONS`` connections each; an owner's pool
    goes with its last connection, so owners that come and go leave nothing behind).
    ``forwarded`` and ``unreachable`` count the requests the owner answered and those it did
    not, for the metrics."""

    def __init__(self, max_hops: int, timeout: float) -> None:
        self.max_hops = max_hops
        self.timeout = timeout
        self._client: aiohttp.ClientSession | None = None
        self.forwarded = 0
        self.unreachable = 0

    def _http(self) -> aiohttp.ClientSession:
        """The session (created on first use, on the app's event loop)."""
        if self._client is None:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0,  # no bound over all owners together; each owner's is below
                    limit_per_host=PEER_CONNECTIONS,
                    keepalive_timeout=KEEP_ALIVE_S,
                ),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                # One caller's cookies are never another's; the owner sets none anyway.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=_NOT_ADDED,
                # Instances reach each other directly, never through a proxy from the environment.
                trust_env=False,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def forward(
        self, request: Request[Any, Any, Any], elsewhere: OwnedElsewhereError
    ) -> Response[bytes]:
        """The owner's answer to ``request``; ``ForwardLimitError`` (503) once the request has
        been forwarded ``max_hops`` times, ``OwnerUnreachableError`` (503) without an answer."""
        hops = forward_hops(request)
        if hops >= self.max_hops:
            raise ForwardLimitError(elsewhere.stream_id, hops) from elsewhere
        scope = request.scope
        # As the caller wrote it (percent-escapes kept); ASGI makes ``raw_path`` optional.
        raw: bytes | None = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else quote(scope["path"])
        target = elsewhere.url.rstrip("/") + path
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [
            (key.decode("latin-1"), value.decode("latin-1"))
            for key, value in scope["headers"]
            if key in _SENT_ON
        ]
        headers.append((HOPS_HEADER, str(hops + 1)))
        request_id = current_request_id()
        if request_id is not None:
            headers.append(("X-Request-ID", request_id))
        body = await request.body()
        try:
            async with (
                asyncio.timeout(self.timeout),
                self._http().request(
                    scope["method"],
                    URL(target, encoded=True),
                    data=body or None,
                    headers=headers,
                    allow_redirects=False,
                ) as answer,
            ):
                content = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            self.unreachable += 1
            raise OwnerUnreachableError(elsewhere.stream_id) from error
        self.forwarded += 1
        passed_back: dict[str, str] = {}
        for name, value in answer.headers.items():
            if name.lower() in _NOT_PASSED_BACK:
                continue
            # A repeated header comes back as one, its values joined (RFC 9110, 5.3).
            passed_back[name] = f"{passed_back[name]}, {value}" if name in passed_back else value
        return Response(
            content,
            status_code=answer.status,
            headers=passed_back,
            media_type=answer.headers.get("Content-Type", "application/octet-stream"),
        )


async def send_or_forward(
    request: ApiRequest, command: Message[R], answer: Callable[[R], Response[T]]
) -> Response[T]:
    """Send ``command`` and answer with ``answer(result)``; when another instance writes the
    command's stream, the owner's answer to this same request (``Forwarder.forward``).

    Only the writer of the command's own stream (``routing_stream``; any stream when the command
    names none, as an account opened without a key) gets the request: another stream the command
    writes being owned elsewhere (a transfer's destination) is a 503, since that owner would
    send the command back."""
    try:
        result = await request.mediator.send(command)
    except OwnedElsewhereError as elsewhere:
        forwarder: Forwarder | None = request.app.state.get(FORWARDER_STATE_KEY)
        routing = getattr(command, "routing_stream", None)
        if forwarder is None or routing not in (None, elsewhere.stream_id):
            raise
        forwarded: Response[Any] = await forwarder.forward(request, elsewhere)
        return forwarded
    return answer(result)
