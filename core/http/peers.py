"""Messages between instances over HTTP, signed with the deployment's ``PeerCredentials``.

``HttpPeerChannel`` (the ``core.peers.PeerChannel`` port) posts a body to another instance's
internal endpoint with ``Balance-Peer-Signature: <unix seconds>.<signature>``, the signature of
the seconds, the path and the body. ``peer_body`` is the receiving side: the request's body once
its signature checks out and is recent (``MAX_AGE`` either way, for clocks that differ a
little), else ``AuthenticationError`` (401). A message taken off the wire and sent again later
is refused once it is older than that; within it, what it asks is idempotent anyway.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import httpx
from litestar import Request

from core.auth import AuthenticationError, PeerCredentials
from core.peers import NoPeerCredentialsError, PeerUnreachableError

__all__ = [
    "MAX_AGE",
    "PEER_CREDENTIALS_STATE_KEY",
    "SIGNATURE_HEADER",
    "HttpPeerChannel",
    "peer_body",
    "signed_message",
]

SIGNATURE_HEADER: Final = "Balance-Peer-Signature"
# Where ``create_app`` puts the deployment's ``PeerCredentials`` (None without them).
PEER_CREDENTIALS_STATE_KEY: Final = "peer_credentials"
MAX_AGE: Final = 300  # seconds a signed message stays acceptable


def signed_message(seconds: int, path: str, body: bytes) -> bytes:
    return f"{seconds}\n{path}\n".encode() + body


class HttpPeerChannel:
    """One pooled client for every message to every instance (created on first use)."""

    def __init__(self, credentials: PeerCredentials | None, timeout: float) -> None:
        self._credentials = credentials
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout,
                follow_redirects=False,
                trust_env=False,  # instances reach each other directly, never through a proxy
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(self, url: str, path: str, body: bytes) -> bytes:
        if self._credentials is None:
            raise NoPeerCredentialsError()
        seconds = int(time.time())
        signature = self._credentials.sign(signed_message(seconds, path, body))
        headers = {
            SIGNATURE_HEADER: f"{seconds}.{signature}",
            "Content-Type": "application/json",
        }
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self._http().post(
                    url.rstrip("/") + path, content=body, headers=headers
                )
        except (httpx.TransportError, TimeoutError) as error:
            raise PeerUnreachableError(url, type(error).__name__) from error
        if answer.status_code != 200:
            raise PeerUnreachableError(url, f"answered {answer.status_code}")
        return answer.content


async def peer_body(request: Request[Any, Any, Any]) -> bytes:
    """The body of a message from another instance, once its signature is checked."""
    credentials: PeerCredentials | None = request.app.state.get(PEER_CREDENTIALS_STATE_KEY)
    if credentials is None:
        raise AuthenticationError("this instance accepts no messages from other instances")
    header = request.headers.get(SIGNATURE_HEADER)
    if header is None:
        raise AuthenticationError(f"no {SIGNATURE_HEADER} header")
    stamp, _, signature = header.partition(".")
    if not stamp.isdigit() or len(stamp) > 12 or not signature:
        raise AuthenticationError(f"a malformed {SIGNATURE_HEADER} header")
    if abs(time.time() - int(stamp)) > MAX_AGE:
        raise AuthenticationError("a message signed too long ago")
    body = await request.body()
    if not credentials.verify(signed_message(int(stamp), request.url.path, body), signature):
        raise AuthenticationError("a message whose signature does not match")
    return body
