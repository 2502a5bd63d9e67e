"""Read-your-writes: queries that name a minimum version wait for the projection to reach it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["ProjectionProgress"]


class ProjectionProgress:
    """The in-process projector calls ``advanced()`` after each batch; a projector in another
    process cannot, so waiters also wake every ``poll`` seconds and read again."""

    def __init__(self, max_wait: float = 2.0, poll: float = 0.05) -> None:
        self.max_wait = max_wait
        self.poll = poll
        self._event = asyncio.Event()

    def advanced(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def changes(self) -> AsyncIterator[None]:
        """Yield after each advance (or poll interval) until ``max_wait`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while (remaining := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(self.poll, remaining))
            yield
