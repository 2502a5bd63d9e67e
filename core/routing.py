"""Commands go to the instance that writes their stream, before anything is decided.

When several instances share the store and each writes only some streams (``core.placement``),
a command must not be decided on an instance that does not write its stream: that instance's
state of the stream may be stale, and a refusal decided on it ("insufficient funds" on an old
balance) would be a wrong answer, not merely a failed write. So ``RouteToWriter``, a pipeline
behavior on commands, asks the placement where the command's stream is written before the
handler runs, and raises:

- ``OwnedElsewhereError(stream, url)`` when another instance writes it: the HTTP edge forwards
  the request there (``core.http.forwarding``);
- ``StreamMovingError(stream, retry_after)`` while it changes hands: the caller gets 503 with
  ``Retry-After``.

A command names its stream through ``Routed.routing_stream``; ``None`` means the command's
stream is not known before it is handled (a new stream under a fresh id), and its handler picks
an id this instance writes (``fresh_id_here``). The store's append raises the same two errors,
authoritatively and with nothing written, when ownership moved between the check and the write;
they reach the edge the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, Protocol, TypeVar

from core.errors import OwnedElsewhereError, StreamMovingError
from core.placement import Elsewhere, Here, StreamPlacement

__all__ = ["FRESH_ID_ATTEMPTS", "RouteToWriter", "Routed", "fresh_id_here", "require_here"]

R = TypeVar("R")

# How many fresh ids ``fresh_id_here`` draws before it gives up on finding one written here.
FRESH_ID_ATTEMPTS: Final = 32


class Routed(Protocol):
    """A command that says which stream it writes (the one whose writer must decide it)."""

    @property
    def routing_stream(self) -> str | None:
        """The stream this command decides on; ``None`` when its id is chosen by the handler."""
        ...


def require_here(placement: StreamPlacement, stream_id: str) -> None:
    """Return if this instance writes ``stream_id`` now; otherwise raise the error that sends the
    caller to its writer (``OwnedElsewhereError``) or asks it to retry (``StreamMovingError``)."""
    where = placement.place(stream_id)
    if isinstance(where, Here):
        return
    if isinstance(where, Elsewhere):
        raise OwnedElsewhereError(stream_id, where.url)
    raise StreamMovingError(stream_id, where.retry_after)


def fresh_id_here(
    placement: StreamPlacement,
    new_id: Callable[[], str],
    stream_of: Callable[[str], str],
    attempts: int = FRESH_ID_ATTEMPTS,
) -> str:
    """A fresh id whose stream this instance writes: a new stream may as well start where the
    command already is. When none of ``attempts`` draws is written here (this instance writes
    nothing now), the last draw's placement decides, as ``require_here`` does: the command goes
    to an instance that writes streams, which picks an id of its own."""
    candidate = new_id()
    for _ in range(attempts - 1):
        if isinstance(placement.place(stream_of(candidate)), Here):
            return candidate
        candidate = new_id()
    require_here(placement, stream_of(candidate))
    return candidate


class RouteToWriter:
    """Behavior on commands: the command's stream must be written here, or the command goes no
    further (``require_here``). Register it inside the logging and outside any retry."""

    def __init__(self, placement: StreamPlacement) -> None:
        self._placement = placement

    async def handle(self, request: Routed, call_next: Callable[[], Awaitable[R]]) -> R:
        stream = request.routing_stream
        if stream is not None:
            require_here(self._placement, stream)
        return await call_next()
