"""Messages between the instances of one deployment, as the domain sees them: a ``PeerChannel``
posts a body to another instance's internal endpoint and returns the body it answered.

The HTTP implementation, which signs each message with the deployment's ``PeerCredentials``
(``core.auth``), is ``core.http.peers.HttpPeerChannel``; a domain depends on this port only.
"""

from __future__ import annotations

from typing import Protocol

from core.errors import StoreUnavailableError

__all__ = ["NoPeerCredentialsError", "PeerChannel", "PeerUnreachableError"]


class PeerChannel(Protocol):
    async def call(self, url: str, path: str, body: bytes) -> bytes:
        """POST ``body`` to ``path`` at the instance advertising ``url``; its answer's body.

        Raises ``PeerUnreachableError`` when no answer came (refused, broken, timed out, or
        answered with an error status): the message may or may not have been acted on there.
        Raises ``NoPeerCredentialsError`` at once when this deployment has no credentials."""
        ...

    async def close(self) -> None:
        """Release the connections; a later ``call`` opens new ones."""
        ...


class PeerUnreachableError(StoreUnavailableError):
    """Another instance did not answer a message (or refused it); it may have acted on it."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"the instance at {url} did not answer: {reason}")
        self.url = url
        self.reason = reason


class NoPeerCredentialsError(StoreUnavailableError):
    """The instances share no credentials (the authenticator's keys are not a shared secret),
    so none sends another a message."""

    def __init__(self) -> None:
        super().__init__(
            "the instances of this deployment share no secret to sign their messages with "
            "(BALANCE_JWT_SECRET)"
        )
