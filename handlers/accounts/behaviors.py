"""The accounts pipeline: scope checks before anything runs, a bounded retry of commands that
lost an optimistic-concurrency race, and a structured log line per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from core.auth import ForbiddenError
from core.errors import ConcurrencyError
from handlers.accounts.messages import Command, Query

__all__ = ["LogRequests", "RequireScope", "RetryOnConflict", "READ_SCOPE", "WRITE_SCOPE"]

READ_SCOPE = "accounts:read"
WRITE_SCOPE = "accounts:write"
R = TypeVar("R")
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
