"""Collects what plugins register, checks it, and builds the ``Mediator``.

All the work happens here, once, at start-up: factories are called, duplicate handlers are
refused, and each request type's pipeline is folded into a single callable. Dispatch then does
no lookup beyond ``type(request)``. The layers, outermost first (see docs/mediator.md):

    exception actions → exception handlers → pre-processors → post-processors → behaviors → handler

A layer is left out of a request type's pipeline when nothing in it applies to that type, so a
request with only a handler is dispatched straight to ``handler.handle``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast, final

from core.errors import DuplicateHandlerError
from core.mediator import Mediator, RequestPipeline, StreamPipeline
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
from core.publishing import PublishStrategy, SequentialPublisher

__all__ = ["MediatorBuilder"]

# The layers below run inside the mediator at dispatch: log under its name, not the builder's.
logger = logging.getLogger("core.mediator")

RqT = TypeVar("RqT")
E = TypeVar("E", bound=Exception)
H = TypeVar("H")
X = TypeVar("X")

# Resolved components: (bound type or None for "every request", component).
_Bound = list[tuple[type[Any] | None, H]]
# Resolved exception components: (exception type, bound request type or None, component).
_ExceptionBound = list[tuple[type[Exception], type[Any] | None, H]]
# Per request type: exception type → its exception handlers/actions, in registration order.
_ByException = dict[type[Exception], tuple[H, ...]]
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
        _check_type(request_type, Request, "request_type")
        self._handlers.append(Registration(handler, plugin, request_type))

    def add_stream_handler(
        self,
        request_type: type[RqT],
        handler: Provider[StreamRequestHandler[RqT, Any]],
        *,
        plugin: str,
    ) -> None:
        _check_type(request_type, StreamRequest, "request_type")
        self._stream_handlers.append(Registration(handler, plugin, request_type))

    def add_notification_handler(
        self,
        notification_type: type[RqT],
        handler: Provider[NotificationHandler[RqT]],
        *,
        plugin: str,
    ) -> None:
        _check_type(notification_type, Notification, "notification_type")
        self._notification_handlers.append(Registration(handler, plugin, notification_type))

    def add_behavior(
        self,
        behavior: Provider[PipelineBehavior[RqT, Any]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        """First registered is outermost. ``request_type=None``: every request."""
        _check_optional_type(request_type, Request)
        self._behaviors.append(Registration(behavior, plugin, request_type))

    def add_stream_behavior(
        self,
        behavior: Provider[StreamPipelineBehavior[RqT, Any]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        _check_optional_type(request_type, StreamRequest)
        self._stream_behaviors.append(Registration(behavior, plugin, request_type))

    def add_pre_processor(
        self,
        processor: Provider[RequestPreProcessor[RqT]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        _check_optional_type(request_type, Request)
        self._pre.append(Registration(processor, plugin, request_type))

    def add_post_processor(
        self,
        processor: Provider[RequestPostProcessor[RqT, Any]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        _check_optional_type(request_type, Request)
        self._post.append(Registration(processor, plugin, request_type))

    def add_exception_handler(
        self,
        exception_type: type[E],
        handler: Provider[RequestExceptionHandler[RqT, Any, E]],
        *,
        plugin: str,
        request_type: type[RqT] | None = None,
    ) -> None:
        _check_type(exception_type, Exception, "exception_type")
        _check_optional_type(request_type, Request)
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
        _check_type(exception_type, Exception, "exception_type")
        _check_optional_type(request_type, Request)
        self._actions.append(ExceptionRegistration(exception_type, action, plugin, request_type))

    def build(self) -> Mediator:
        """Call the factories and fold the pipelines. Raises ``DuplicateHandlerError`` when a
        request type has more than one handler, ``TypeError`` for a malformed component."""
        handlers = _one_each(self._handlers, "handle")
        stream_handlers = _one_each(self._stream_handlers, "handle")
        layers = _Layers(
            behaviors=_resolve_bound(self._behaviors, "handle"),
            pre=_resolve_bound(self._pre, "process"),
            post=_resolve_bound(self._post, "process"),
            exception_handlers=_resolve_exceptions(self._exception_handlers, "handle"),
            actions=_resolve_exceptions(self._actions, "execute"),
        )
        stream_behaviors = _resolve_bound(self._stream_behaviors, "handle")
        requests = {rt: layers.pipeline(rt, h) for rt, h in handlers.items()}
        streams = {
            rt: _stream_pipeline(rt, h, stream_behaviors) for rt, h in stream_handlers.items()
        }
        notification_handlers = [
            (cast(type[Any], r.message_type), _resolve(r.provider, r.plugin, "handle"))
            for r in self._notification_handlers
        ]
        return Mediator(requests, streams, notification_handlers, self._publisher)


@final
@dataclass(frozen=True, slots=True)
class _Layers:
    """The request-side components, resolved, and how to fold them for one request type."""

    behaviors: _Bound[PipelineBehavior[Any, Any]]
    pre: _Bound[RequestPreProcessor[Any]]
    post: _Bound[RequestPostProcessor[Any, Any]]
    exception_handlers: _ExceptionBound[RequestExceptionHandler[Any, Any, Any]]
    actions: _ExceptionBound[RequestExceptionAction[Any, Any]]

    def pipeline(
        self, request_type: type[Any], handler: RequestHandler[Any, Any]
    ) -> RequestPipeline:
        pipeline: RequestPipeline = handler.handle
        for behavior in reversed(_applicable(self.behaviors, request_type)):
            pipeline = _wrap(behavior.handle, pipeline)
        if post := _applicable(self.post, request_type):
            pipeline = _post_processing(tuple(post), pipeline)
        if pre := _applicable(self.pre, request_type):
            pipeline = _pre_processing(tuple(pre), pipeline)
        if exception_handlers := _by_exception(self.exception_handlers, request_type):
            pipeline = _exception_handling(exception_handlers, pipeline)
        if actions := _by_exception(self.actions, request_type):
            pipeline = _exception_actions(actions, pipeline)
        return pipeline


def _stream_pipeline(
    request_type: type[Any],
    handler: StreamRequestHandler[Any, Any],
    behaviors: _Bound[StreamPipelineBehavior[Any, Any]],
) -> StreamPipeline:
    pipeline: StreamPipeline = handler.handle
    for behavior in reversed(_applicable(behaviors, request_type)):
        pipeline = _wrap(behavior.handle, pipeline)
    return pipeline


# --- the layers: each takes the pipeline inside it and returns the pipeline with it around ----


def _wrap(
    handle: Callable[[Any, Callable[[], X]], X], inner: Callable[[Any], X]
) -> Callable[[Any], X]:
    # A plain function, not a coroutine: it returns the behavior's awaitable (or iterator)
    # without adding a frame of its own. ``partial`` is cheaper to call than a lambda.
    def step(request: Any) -> X:
        return handle(request, partial(inner, request))

    return step


def _pre_processing(
    processors: tuple[RequestPreProcessor[Any], ...], inner: RequestPipeline
) -> RequestPipeline:
    async def step(request: Any) -> Any:
        for processor in processors:
            await processor.process(request)
        return await inner(request)

    return step


def _post_processing(
    processors: tuple[RequestPostProcessor[Any, Any], ...], inner: RequestPipeline
) -> RequestPipeline:
    async def step(request: Any) -> Any:
        response = await inner(request)
        for processor in processors:
            await processor.process(request, response)
        return response

    return step


def _exception_handling(
    handlers: _ByException[RequestExceptionHandler[Any, Any, Any]], inner: RequestPipeline
) -> RequestPipeline:
    async def step(request: Any) -> Any:
        try:
            return await inner(request)
        except Exception as exc:
            # Most specific exception type first; within one type, registration order.
            for exc_type in type(exc).__mro__:
                for handler in handlers.get(exc_type, ()):
                    handled = await handler.handle(request, exc)
                    if handled is not None:
                        return handled.response
            raise

    return step


def _exception_actions(
    actions: _ByException[RequestExceptionAction[Any, Any]], inner: RequestPipeline
) -> RequestPipeline:
    async def step(request: Any) -> Any:
        try:
            return await inner(request)
        except Exception as exc:
            for exc_type in type(exc).__mro__:
                for action in actions.get(exc_type, ()):
                    try:
                        await action.execute(request, exc)
                    except Exception as action_exc:
                        # The caller must see the original error, not the observer's: log the
                        # action's failure and note it on the original, then carry on.
                        _report_failed_action(action, exc, action_exc)
            raise

    return step


def _report_failed_action(action: object, exc: Exception, action_exc: Exception) -> None:
    name = type(action).__qualname__
    logger.error("exception action %s failed while observing %r", name, exc, exc_info=action_exc)
    exc.add_note(f"exception action {name} failed: {action_exc!r}")


# --- registration: validation, factories, applicability -----------------------------------------


def _check_type(value: object, base: type[Any], name: str) -> None:
    if not (isinstance(value, type) and issubclass(value, base)):
        raise TypeError(f"{name} must be a subclass of {base.__qualname__}, got {value!r}")


def _check_optional_type(request_type: object, base: type[Any]) -> None:
    if request_type is not None:
        _check_type(request_type, base, "request_type")


def _resolve(provider: Provider[H], plugin: str, method: str) -> H:
    # A class is always a factory; anything else that already has the method is the component.
    component: object
    if not isinstance(provider, type) and hasattr(provider, method):
        component = provider
    elif callable(provider):
        try:
            component = provider()
        except Exception as exc:
            exc.add_note(f"while building {provider!r}, registered by plugin {plugin!r}")
            raise
    else:
        raise TypeError(f"plugin {plugin!r} registered {provider!r}: no {method}() method")
    if not callable(getattr(component, method, None)):
        raise TypeError(f"plugin {plugin!r} registered {component!r}: no {method}() method")
    return cast(H, component)


def _one_each(registrations: Sequence[Registration[H]], method: str) -> dict[type[Any], H]:
    by_type: dict[type[Any], list[Registration[H]]] = {}
    for registration in registrations:
        by_type.setdefault(cast(type[Any], registration.message_type), []).append(registration)
    for request_type, found in by_type.items():
        if len(found) > 1:
            raise DuplicateHandlerError(request_type, [r.plugin for r in found])
    return {t: _resolve(found[0].provider, found[0].plugin, method) for t, found in by_type.items()}


def _resolve_bound(registrations: Sequence[Registration[H]], method: str) -> _Bound[H]:
    return [(r.message_type, _resolve(r.provider, r.plugin, method)) for r in registrations]


def _resolve_exceptions(
    registrations: Sequence[ExceptionRegistration[H]], method: str
) -> _ExceptionBound[H]:
    return [
        (r.exception_type, r.request_type, _resolve(r.provider, r.plugin, method))
        for r in registrations
    ]


def _applicable(components: _Bound[H], request_type: type[Any]) -> list[H]:
    return [c for bound, c in components if bound is None or issubclass(request_type, bound)]


def _by_exception(components: _ExceptionBound[H], request_type: type[Any]) -> _ByException[H]:
    grouped: dict[type[Exception], list[H]] = {}
    for exc_type, bound, component in components:
        if bound is None or issubclass(request_type, bound):
            grouped.setdefault(exc_type, []).append(component)
    return {exc_type: tuple(found) for exc_type, found in grouped.items()}
