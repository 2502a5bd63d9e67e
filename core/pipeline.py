"""What a plugin hands the mediator: the shapes of handlers, behaviors, processors and exception
handlers (as Protocols, so plugins never inherit from core), and the records the builder keeps.

Every method's parameters are positional-only: the mediator passes them by position, so an
implementation may name them as it likes (``query``, ``command``, ``event``...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeAlias, TypeVar, final

__all__ = [
    "ExceptionRegistration",
    "Handled",
    "NotificationHandler",
    "PipelineBehavior",
    "Provider",
    "Registration",
    "RequestExceptionAction",
    "RequestExceptionHandler",
    "RequestHandler",
    "RequestPostProcessor",
    "RequestPreProcessor",
    "StreamPipelineBehavior",
    "StreamRequestHandler",
]

RqT_contra = TypeVar("RqT_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)
R_contra = TypeVar("R_contra", contravariant=True)
R = TypeVar("R")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
N_contra = TypeVar("N_contra", contravariant=True)
E_contra = TypeVar("E_contra", bound=Exception, contravariant=True)
H = TypeVar("H")


class RequestHandler(Protocol[RqT_contra, R_co]):
    """The one handler of a request type."""

    async def handle(self, request: RqT_contra, /) -> R_co: ...


class StreamRequestHandler(Protocol[RqT_contra, T_co]):
    """The one handler of a stream request type; usually an ``async def`` that ``yield``s."""

    def handle(self, request: RqT_contra, /) -> AsyncIterator[T_co]: ...


class NotificationHandler(Protocol[N_contra]):
    """One of any number of handlers of a notification type and its subclasses."""

    async def handle(self, notification: N_contra, /) -> None: ...


class PipelineBehavior(Protocol[RqT_contra, R]):
    """Wraps the handler: code before ``await call_next()`` runs on the way in, code after it on
    the way out. Not calling ``call_next`` short-circuits everything inside this behavior."""

    async def handle(self, request: RqT_contra, call_next: Callable[[], Awaitable[R]], /) -> R: ...


class StreamPipelineBehavior(Protocol[RqT_contra, T]):
    """Wraps a stream handler; ``call_next()`` returns the inner iterator."""

    def handle(
        self, request: RqT_contra, call_next: Callable[[], AsyncIterator[T]], /
    ) -> AsyncIterator[T]: ...


class RequestPreProcessor(Protocol[RqT_contra]):
    """Runs before every behavior; raising stops the request."""

    async def process(self, request: RqT_contra, /) -> None: ...


class RequestPostProcessor(Protocol[RqT_contra, R_contra]):
    """Runs after every behavior has returned, with the response the caller will get."""

    async def process(self, request: RqT_contra, response: R_contra, /) -> None: ...


@final
@dataclass(frozen=True, slots=True)
class Handled(Generic[R_co]):
    """An exception handler's answer: "use this response instead of raising"."""

    response: R_co


class RequestExceptionHandler(Protocol[RqT_contra, R_co, E_contra]):
    """May turn an exception into a response by returning ``Handled(response)``; returning
    ``None`` passes the exception on to the next, less specific, exception handler."""

    async def handle(self, request: RqT_contra, exc: E_contra, /) -> Handled[R_co] | None: ...


class RequestExceptionAction(Protocol[RqT_contra, E_contra]):
    """Observes an exception that no exception handler handled (to log, count, alert); the
    exception then propagates to the caller whatever the action does."""

    async def execute(self, request: RqT_contra, exc: E_contra, /) -> None: ...


# A component, or a zero-argument factory for it (a class, or e.g. a punq container's resolve).
# Factories are called once, at ``MediatorBuilder.build()``.
Provider: TypeAlias = H | Callable[[], H]


@final
@dataclass(frozen=True, slots=True)
class Registration(Generic[H]):
    """One component as a plugin registered it. ``message_type`` is the request or notification
    type it is bound to (that type and its subclasses); ``None`` means every request."""

    provider: Provider[H]
    plugin: str
    message_type: type[Any] | None


@final
@dataclass(frozen=True, slots=True)
class ExceptionRegistration(Generic[H]):
    """An exception handler or action for ``exception_type`` (and its subclasses), on requests
    of ``request_type`` (and its subclasses), or on every request when that is ``None``."""

    exception_type: type[Exception]
    provider: Provider[H]
    plugin: str
    request_type: type[Any] | None
