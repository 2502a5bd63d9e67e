"""Message markers: what a caller can send, stream or publish through the mediator.

They carry no behaviour. A request type names its response type as the generic argument, so
``await mediator.send(GetBalance(...))`` is typed by mypy without a cast. The markers have empty
``__slots__`` so that both ``@dataclass(slots=True)`` classes and ``msgspec.Struct`` types can use
them as bases.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Notification", "Request", "StreamRequest"]

R_co = TypeVar("R_co", covariant=True)
T_co = TypeVar("T_co", covariant=True)


class Request(Generic[R_co]):
    """A command or query: exactly one handler, which returns ``R_co``."""

    __slots__ = ()


class StreamRequest(Generic[T_co]):
    """A request whose one handler yields items of ``T_co`` as an async iterator."""

    __slots__ = ()


class Notification:
    """Something that happened: published to any number of handlers, none required."""

    __slots__ = ()
