"""Folds one request type's pipeline out of the components that apply to it.

The layers, outermost first (see docs/mediator.md):

    exception actions → exception handlers → pre-processors → post-processors → behaviors → handler

A layer is left out of a request type's pipeline when nothing in it applies to that type, so a
request with only a handler is dispatched straight to ``handler.handle``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, final

from core.mediator import RequestPipeline, StreamPipeline
from core.pipeline import (
    PipelineBehavior,
    RequestExceptionAction,
    RequestExceptionHandler,
    RequestHandler,
    RequestPostProcessor,
    RequestPreProcessor,
    StreamPipelineBehavior,
    StreamRequestHandler,
)

__all__ = ["Bound", "ExceptionBound", "Layers", "stream_pipeline"]

# The layers below run inside the mediator at dispatch: log under its name, not the builder's.
logger = logging.getLogger("core.mediator")

H = TypeVar("H")
X = TypeVar("X")

# Resolved components: (bound type or None for "every request", component).
Bound = list[tuple[type[Any] | None, H]]
# Resolved exception components: (exception type, bound request type or None, component).
ExceptionBound = list[tuple[type[Exception], type[Any] | None, H]]
# Per request type: exception type → its exception handlers/actions, in registration order.
ByException = dict[type[Exception], tuple[H, ...]]


@final
@dataclass(frozen=True, slots=True)
class Layers:
    """The request-side components, resolved, and how to fold them for one request type."""

    behaviors: Bound[PipelineBehavior[Any, Any]]
    pre: Bound[RequestPreProcessor[Any]]
    post: Bound[RequestPostProcessor[Any, Any]]
    exception_handlers: ExceptionBound[RequestExceptionHandler[Any, Any, Any]]
    actions: ExceptionBound[RequestExceptionAction[Any, Any]]

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


def stream_pipeline(
    request_type: type[Any],
    handler: StreamRequestHandler[Any, Any],
    behaviors: Bound[StreamPipelineBehavior[Any, Any]],
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
    handlers: ByException[RequestExceptionHandler[Any, Any, Any]], inner: RequestPipeline
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
    actions: ByException[RequestExceptionAction[Any, Any]], inner: RequestPipeline
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


def _applicable(components: Bound[H], request_type: type[Any]) -> list[H]:
    return [c for bound, c in components if bound is None or issubclass(request_type, bound)]


def _by_exception(components: ExceptionBound[H], request_type: type[Any]) -> ByException[H]:
    grouped: dict[type[Exception], list[H]] = {}
    for exc_type, bound, component in components:
        if bound is None or issubclass(request_type, bound):
            grouped.setdefault(exc_type, []).append(component)
    return {exc_type: tuple(found) for exc_type, found in grouped.items()}
