"""Collects what plugins register, checks it, and builds the ``Mediator``.

All the work happens here, once, at start-up: factories are called, duplicate handlers are
refused (``core.component_resolution``), and each request type's pipeline is folded into a
single callable (``core.pipeline_folding``, which lists the layers). Dispatch then does no lookup
beyond ``type(request)``.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast, final

from core.component_resolution import (
    check_optional_type,
    check_type,
    one_each,
    resolve,
    resolve_bound,
    resolve_exceptions,
)
from core.mediator import Mediator
from core.messages import Notification, Request, StreamRequest
from core.pipeline import (
    ExceptionRegistration,
    NotificationHandler,
    PipelineBehavior,
    Provider,
    Registration,
    RequestExceptionAction,
    RequestExceptionHandler,
    RequestHandler,
    RequestPostProcessor,
    RequestPreProcessor,
    StreamPipelineBehavior,
    StreamRequestHandler,
)
from core.pipeline_folding import Layers, stream_pipeline
from core.publishing import PublishStrategy, SequentialPublisher

__all__ = ["MediatorBuilder"]

RqT = TypeVar("RqT")
E = TypeVar("E", bound=Exception)
_ExceptionHandlerRegistration = ExceptionRegistration[RequestExceptionHandler[Any, Any, Any]]


@final
class MediatorBuilder:
    """Handlers, behaviors and the rest are given as instances or zero-argument factories, with
    the name of the plugin that registered them. Components are built once and shared by every
    call, so they must be stateless (or safe to share between concurrent requests)."""

    __slots__ = ("_actions", "_behaviors", "_exception_handlers", "_handlers",
                 "_notification_handlers", "_post", "_pre", "_publisher", "_stream_behaviors",
                 "_stream_handlers")  # fmt: skip

    def __init__(self, publisher: PublishStrategy | None = None) -> None:
        self._publisher: PublishStrategy = publisher or SequentialPublisher()
        self._handlers: list[Registration[RequestHandler[Any, Any]]] = []
        self._stream_handlers: list[Registration[StreamRequestHandler[Any, Any]]] = []
        self._notification_handlers: list[Registration[NotificationHandler[Any]]] = []
        self._behaviors: list[Registration[PipelineBehavior[Any, Any]]] = []
        self._stream_behaviors: list[Registration[StreamPipelineBehavior[Any, Any]]] = []
        self._pre: list[Registration[RequestPreProcessor[Any]]] = []
        self._post: list[Registration[RequestPostProcessor[Any, Any]]] = []
        self._exception_handlers: list[_ExceptionHandlerRegistration] = []
        self._actions: list[ExceptionRegistration[RequestExceptionAction[Any, Any]]] = []

    def add_handler(
        self, request_type: type[RqT], handler: Provider[RequestHandler[RqT, Any]], *, plugin: str
    ) -> None:
        check_type(request_type, Request, "request_type")
        self._handlers.append(Registration(handler, plugin, request_type))

    def add_stream_handler(
        self,
        request_type: type[RqT],
        handler: Provider[StreamRequestHandler[RqT, Any]],
        *,
        plugin: str,
    ) -> None:
        check_type(request_type, StreamRequest, "request_type")
        self._stream_handlers.append(Registration(handler, plugin, request_type))

    def add_notification_handler(
        self,
        notification_type: type[RqT],
        handler: Provider[NotificationHandler[RqT]],
        *,
        plugin: str,
    ) -> None:
        check_type(notification_type, Notification, "notification_type")
        self._notification_handlers.append(Registration(handler, plugin, notification_type))

    def add_behavior(
        self,
        behavior: Provider[PipelineBehavior[RqT, Any]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        """First registered is outermost. ``request_type=None``: every request."""
        check_optional_type(request_type, Request)
        self._behaviors.append(Registration(behavior, plugin, request_type))

    def add_stream_behavior(
        self,
        behavior: Provider[StreamPipelineBehavior[RqT, Any]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        check_optional_type(request_type, StreamRequest)
        self._stream_behaviors.append(Registration(behavior, plugin, request_type))

    def add_pre_processor(
        self,
        processor: Provider[RequestPreProcessor[RqT]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        check_optional_type(request_type, Request)
        self._pre.append(Registration(processor, plugin, request_type))

    def add_post_processor(
        self,
        processor: Provider[RequestPostProcessor[RqT, Any]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        check_optional_type(request_type, Request)
        self._post.append(Registration(processor, plugin, request_type))

    def add_exception_handler(
        self,
        exception_type: type[E],
        handler: Provider[RequestExceptionHandler[RqT, Any, E]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        check_type(exception_type, Exception, "exception_type")
        check_optional_type(request_type, Request)
        self._exception_handlers.append(
            ExceptionRegistration(exception_type, handler, plugin, request_type)
        )

    def add_exception_action(
        self,
        exception_type: type[E],
        action: Provider[RequestExceptionAction[RqT, E]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        check_type(exception_type, Exception, "exception_type")
        check_optional_type(request_type, Request)
        self._actions.append(ExceptionRegistration(exception_type, action, plugin, request_type))

    def build(self) -> Mediator:
        """Call the factories and fold the pipelines. Raises ``DuplicateHandlerError`` when a
        request type has more than one handler, ``TypeError`` for a malformed component."""
        handlers = one_each(self._handlers, "handle")
        stream_handlers = one_each(self._stream_handlers, "handle")
        layers = Layers(
            behaviors=resolve_bound(self._behaviors, "handle"),
            pre=resolve_bound(self._pre, "process"),
            post=resolve_bound(self._post, "process"),
            exception_handlers=resolve_exceptions(self._exception_handlers, "handle"),
            actions=resolve_exceptions(self._actions, "execute"),
        )
        stream_behaviors = resolve_bound(self._stream_behaviors, "handle")
        requests = {rt: layers.pipeline(rt, h) for rt, h in handlers.items()}
        streams = {
            rt: stream_pipeline(rt, h, stream_behaviors) for rt, h in stream_handlers.items()
        }
        notification_handlers = [
            (cast(type[Any], r.message_type), resolve(r.provider, r.plugin, "handle"))
            for r in self._notification_handlers
        ]
        return Mediator(requests, streams, notification_handlers, self._publisher)
