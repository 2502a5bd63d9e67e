"""The in-process mediator: ``send`` a request to its one handler, ``stream`` from a stream
handler, ``publish`` a notification to all of its handlers.

Dispatch does no work that could have been done earlier: ``MediatorBuilder.build()`` folds each
request type's pipeline into one callable, so ``send`` is a dict lookup and a call. Callers should
depend on the narrow ``Sender`` or ``Publisher`` rather than on ``Mediator``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar, final

from core.errors import HandlerNotFoundError
from core.messages import Notification, Request, StreamRequest
from core.pipeline import NotificationHandler
from core.publishing import PublishStrategy

__all__ = ["Mediator", "Publisher", "RequestPipeline", "Sender", "StreamPipeline"]

R = TypeVar("R")
T = TypeVar("T")

# What the builder hands over: per request type, one callable that runs the whole pipeline.
# Request types are concrete classes, so the response type is only known per entry.
RequestPipeline: TypeAlias = Callable[[Any], Awaitable[Any]]
StreamPipeline: TypeAlias = Callable[[Any], AsyncIterator[Any]]


class Sender(Protocol):
    """Sends requests; what a controller or a CLI command needs."""

    async def send(self, request: Request[R], /) -> R: ...

    def stream(self, request: StreamRequest[T], /) -> AsyncIterator[T]: ...


class Publisher(Protocol):
    """Publishes notifications; what a handler that announces events needs."""

    async def publish(self, notification: Notification, /) -> None: ...


@final
class Mediator:
    """Both ``Sender`` and ``Publisher``. Build it with ``MediatorBuilder``."""

    __slots__ = ("_notification_cache", "_notification_handlers", "_publisher", "_requests",
                 "_streams")  # fmt: skip

    def __init__(
        self,
        requests: Mapping[type[Any], RequestPipeline],
        streams: Mapping[type[Any], StreamPipeline],
        notification_handlers: Sequence[tuple[type[Any], NotificationHandler[Any]]],
        publisher: PublishStrategy,
    ) -> None:
        self._requests = dict(requests)
        self._streams = dict(streams)
        self._notification_handlers = tuple(notification_handlers)
        self._notification_cache: dict[type[Any], tuple[NotificationHandler[Any], ...]] = {}
        self._publisher = publisher

    async def send(self, request: Request[R], /) -> R:
        """Run ``request`` through its pipeline and return its handler's response."""
        try:
            pipeline: Callable[[Request[R]], Awaitable[R]] = self._requests[type(request)]
        except KeyError:
            raise HandlerNotFoundError(type(request)) from None
        return await pipeline(request)

    def stream(self, request: StreamRequest[T], /) -> AsyncIterator[T]:
        """The items of ``request``'s stream handler, through its stream behaviors.

        Not a coroutine: a missing handler raises here, at the call, not at the first item.
        """
        try:
            pipeline: Callable[[StreamRequest[T]], AsyncIterator[T]] = self._streams[type(request)]
        except KeyError:
            raise HandlerNotFoundError(type(request)) from None
        return pipeline(request)

    async def publish(self, notification: Notification, /) -> None:
        """Run every handler registered for ``type(notification)`` or one of its base classes, in
        registration order, with the publish strategy. No handler is not an error."""
        notification_type = type(notification)
        handlers = self._notification_cache.get(notification_type)
        if handlers is None:
            handlers = self._handlers_for(notification_type)
        if handlers:
            await self._publisher.publish(notification, handlers)

    def _handlers_for(self, notification_type: type[Any]) -> tuple[NotificationHandler[Any], ...]:
        # Resolved on first publish rather than at build: a notification may be a subclass that
        # no plugin named at registration. Cached, so each type pays for the scan once.
        handlers = tuple(
            handler
            for bound, handler in self._notification_handlers
            if issubclass(notification_type, bound)
        )
        self._notification_cache[notification_type] = handlers
        return handlers
