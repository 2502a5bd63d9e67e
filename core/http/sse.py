"""Server-Sent Events for routes that serve a live stream: heartbeats, a resume point, and an end
at shutdown.

- ``heartbeats`` yields ``None`` when an item has not come for ``every`` seconds, so a route can
  send a comment line that keeps proxies from closing an idle connection.
- ``StreamsClosing`` ends every open stream when the server begins to shut down. A server waits
  for its open responses before it stops, and a live stream never ends by itself; each stream
  ends cleanly instead, and its client reconnects (to another instance, or to this one once it is
  back) with ``Last-Event-ID`` and loses nothing.
- ``resume_after`` reads where a client resumes: ``Last-Event-ID`` (what browsers send on a
  reconnect) or a query parameter, each a non-negative integer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final, TypeVar

from core.http.problems import InvalidHeaderError
from core.http.request import ApiRequest

__all__ = ["STREAMS_STATE_KEY", "StreamsClosing", "heartbeats", "resume_after", "streams_closing"]

T = TypeVar("T")
STREAMS_STATE_KEY: Final = "streams_closing"
_MAX_ID: Final = 10**18 - 1


class StreamsClosing:
    """Set once, when the server begins to shut down; safe to call from a signal handler."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    def _bound(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            if self._closing:
                self._event.set()
        return self._event

    async def wait(self) -> None:
        await self._bound().wait()

    @property
    def closing(self) -> bool:
        return self._closing

    def close_all(self) -> None:
        self._closing = True
        if self._event is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._event.set)


def streams_closing(request: ApiRequest) -> StreamsClosing:
    closing: StreamsClosing = request.app.state[STREAMS_STATE_KEY]
    return closing


async def heartbeats(
    items: AsyncIterator[T], every: float, closing: StreamsClosing
) -> AsyncIterator[T | None]:
    """``items``, with ``None`` after each ``every`` seconds without one; ends when ``items``
    ends or the server begins to shut down. Closing this closes ``items``."""
    following = asyncio.ensure_future(anext(items))
    shutdown = asyncio.ensure_future(closing.wait())
    try:
        while True:
            done, _ = await asyncio.wait(
                {following, shutdown}, timeout=every, return_when=asyncio.FIRST_COMPLETED
            )
            if shutdown in done:
                return
            if following not in done:
                yield None
                continue
            try:
                item = following.result()
            except StopAsyncIteration:
                return
            yield item
            following = asyncio.ensure_future(anext(items))
    finally:
        shutdown.cancel()
        following.cancel()
        with contextlib.suppress(BaseException):
            await following
        aclose = getattr(items, "aclose", None)
        if aclose is not None:
            await aclose()


def resume_after(request: ApiRequest, after: int | None) -> int:
    """Where the client resumes: ``Last-Event-ID`` when sent, else ``after``, else 0."""
    header = request.headers.get("last-event-id")
    if header is None:
        return after or 0
    text = header.strip()
    if not text.isascii() or not text.isdigit() or int(text) > _MAX_ID:
        raise InvalidHeaderError("Last-Event-ID", "must be an event id this API sent (digits)")
    return int(text)
