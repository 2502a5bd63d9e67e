"""The accounts pipeline: scope checks before anything runs, a bounded retry of commands that
lost an optimistic-concurrency race, and a structured log line per request; for streams (the
account feeds), the same scope check and a log line when a stream ends."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

from core.auth import ForbiddenError
from core.errors import ConcurrencyError
from handlers.accounts.messages import Command, Query

__all__ = [
    "READ_SCOPE",
    "WRITE_SCOPE",
    "LogRequests",
    "LogStreams",
    "RequireScope",
    "RequireStreamScope",
    "RetryOnConflict",
]

READ_SCOPE = "accounts:read"
WRITE_SCOPE = "accounts:write"
R = TypeVar("R")
T = TypeVar("T")
log = logging.getLogger("balance.requests")


class RequireScope:
    """Pre-processor: commands need ``accounts:write``, queries ``accounts:read``."""

    async def process(self, request: Any) -> None:
        if isinstance(request, Command):
            if not request.context.actor.has_scope(WRITE_SCOPE):
                raise ForbiddenError(WRITE_SCOPE)
        elif isinstance(request, Query) and not request.actor.has_scope(READ_SCOPE):
            raise ForbiddenError(READ_SCOPE)


class RetryOnConflict:
    """Behavior on commands: a command that names no expected version is decided again from
    fresh state when another writer got there first, up to ``attempts`` times. A command that
    names its expected version (HTTP If-Match) is never retried."""

    def __init__(self, attempts: int = 5) -> None:
        self.attempts = attempts

    async def handle(self, request: Command[R], call_next: Callable[[], Awaitable[R]]) -> R:
        if request.context.expected_version is not None:
            return await call_next()
        for _ in range(self.attempts - 1):
            try:
                return await call_next()
            except ConcurrencyError:
                continue
        return await call_next()


class LogRequests:
    """Behavior on every request: one structured line with the outcome and the duration."""

    async def handle(self, request: Any, call_next: Callable[[], Awaitable[R]]) -> R:
        if not log.isEnabledFor(logging.INFO):
            return await call_next()
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await call_next()
        except Exception as error:
            outcome = type(error).__name__
            raise
        finally:
            log.info(
                "request handled",
                extra={
                    "request": type(request).__name__,
                    "outcome": outcome,
                    "ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )


class RequireStreamScope:
    """Stream behavior: a stream request with an ``actor`` (an account feed) needs
    ``accounts:read``, checked before its handler runs."""

    async def handle(
        self, request: Any, call_next: Callable[[], AsyncIterator[T]]
    ) -> AsyncIterator[T]:
        actor = getattr(request, "actor", None)
        if actor is not None and not actor.has_scope(READ_SCOPE):
            raise ForbiddenError(READ_SCOPE)
        async with contextlib.aclosing(_generator(call_next())) as items:
            async for item in items:
                yield item


class LogStreams:
    """Stream behavior: one structured line when a stream ends, with how it ended, how many
    items it gave and how long it was open."""

    async def handle(
        self, request: Any, call_next: Callable[[], AsyncIterator[T]]
    ) -> AsyncIterator[T]:
        started = time.perf_counter()
        outcome, items = "ended", 0
        try:
            async with contextlib.aclosing(_generator(call_next())) as inner:
                async for item in inner:
                    items += 1
                    yield item
        except GeneratorExit:
            outcome = "closed"
            raise
        except BaseException as error:
            outcome = type(error).__name__
            raise
        finally:
            log.info(
                "stream ended",
                extra={
                    "request": type(request).__name__,
                    "outcome": outcome,
                    "items": items,
                    "ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )


def _generator(items: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """A stream pipeline's iterator is an async generator (each layer is one); closing it when
    the caller stops reading ends the layers inside, and the handler's own clean-up runs."""
    return cast(AsyncGenerator[T, None], items)
