"""How a subscription waits for the next commit."""

from __future__ import annotations

import asyncio

__all__ = ["woken"]


async def woken(event: asyncio.Event, timeout: float) -> bool:
    """Whether ``event`` is set within ``timeout`` seconds (a subscription's wait for a commit)."""
    if timeout <= 0:
        return False
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True
