"""How ``Mediator.publish`` runs a notification's handlers: a strategy object chosen at build.

Both strategies give every handler its turn whatever the others do, and report every failure
together in one ``NotificationError``. Only ``Exception``s are collected: cancellation,
``KeyboardInterrupt`` and ``SystemExit`` propagate as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol, final

from core.errors import NotificationError
from core.messages import Notification
from core.pipeline import NotificationHandler

__all__ = ["ConcurrentPublisher", "PublishStrategy", "SequentialPublisher"]


class PublishStrategy(Protocol):
    async def publish(
        self, notification: Notification, handlers: Sequence[NotificationHandler[Any]], /
    ) -> None:
        """Run ``handlers`` (never empty, in registration order) on ``notification``."""
        ...


@final
class SequentialPublisher:
    """One handler after another, in registration order (the default)."""

    __slots__ = ()

    async def publish(
        self, notification: Notification, handlers: Sequence[NotificationHandler[Any]], /
    ) -> None:
        errors: list[Exception] = []
        for handler in handlers:
            try:
                await handler.handle(notification)
            except Exception as exc:  # a failing handler must not rob the next one of its turn
                errors.append(exc)
        if errors:
            raise NotificationError(type(notification), errors)


@final
class ConcurrentPublisher:
    """All handlers at once, each in its own task; waits for every one of them to finish."""

    __slots__ = ()

    async def publish(
        self, notification: Notification, handlers: Sequence[NotificationHandler[Any]], /
    ) -> None:
        # return_exceptions=True: one failure must not leave the others cancelled or unawaited.
        # If publish itself is cancelled, gather cancels the handlers and re-raises regardless.
        results = await asyncio.gather(
            *(handler.handle(notification) for handler in handlers), return_exceptions=True
        )
        errors: list[Exception] = []
        for result in results:
            if isinstance(result, Exception):
                errors.append(result)
            elif isinstance(result, BaseException):
                raise result  # e.g. a handler's own CancelledError: never folded into the group
        if errors:
            raise NotificationError(type(notification), errors)
