"""The project's error root, and the mediator's own errors.

Every typed error in the project derives from ``BalanceError``, so one ``except BalanceError``
separates "we refused this on purpose" from a bug. Errors that belong to one module (the domain,
configuration) live beside that module; here are the mediator's, and the event store's errors
that every backend shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

__all__ = [
    "BalanceError",
    "DuplicateHandlerError",
    "HandlerNotFoundError",
    "NotificationError",
]


class BalanceError(Exception):
    """Base of every typed error raised by this project."""


def _type_name(cls: type[Any]) -> str:
    """``module.QualName``: unambiguous in logs even when two plugins reuse a class name."""
    return f"{cls.__module__}.{cls.__qualname__}"


class HandlerNotFoundError(BalanceError):
    """``send`` or ``stream`` got a request type that no plugin registered a handler for."""

    def __init__(self, request_type: type[Any]) -> None:
        super().__init__(f"no handler registered for request type {_type_name(request_type)}")
        self.request_type = request_type


class DuplicateHandlerError(BalanceError):
    """More than one handler was registered for one request type; raised at start-up."""

    def __init__(self, request_type: type[Any], plugins: Sequence[str]) -> None:
        named = ", ".join(repr(p) for p in plugins)
        super().__init__(
            f"request type {_type_name(request_type)} has {len(plugins)} handlers, registered by "
            f"plugins {named}; a request must have exactly one handler"
        )
        self.request_type = request_type
        self.plugins = tuple(plugins)


class NotificationError(ExceptionGroup[Exception], BalanceError):
    """One or more notification handlers failed; carries every failure, in handler order."""

    notification_type: type[Any]

    def __new__(cls, notification_type: type[Any], exceptions: Sequence[Exception]) -> Self:
        count = len(exceptions)
        noun = "handler" if count == 1 else "handlers"
        message = f"{count} notification {noun} failed for {_type_name(notification_type)}"
        self = super().__new__(cls, message, exceptions)
        self.notification_type = notification_type
        return self

    def __init__(self, notification_type: type[Any], exceptions: Sequence[Exception]) -> None:
        super().__init__(self.message, exceptions)

    # ``split``/``subgroup`` and ``except*`` build sub-groups through ``derive``; without this they
    # would come back as plain ExceptionGroups and lose the type callers catch. The base signature
    # is generic over the member type, which a fixed ``Exception`` group cannot honour exactly.
    def derive(self, excs: Sequence[Exception]) -> NotificationError:  # type: ignore[override]
        return NotificationError(self.notification_type, excs)


# The event store's errors, shared by every backend (added with the storage plugins).
__all__ += ["ConcurrencyError", "StoreUnavailableError"]


class ConcurrencyError(BalanceError):
    """An append expected the stream at one version and found it at another; nothing was written.

    Retrying means reloading the stream and deciding again from its current state.
    """

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, "
            f"but the append expected version {expected}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class StoreUnavailableError(BalanceError):
    """The store cannot be reached or failed to commit; the operation was not acknowledged."""


__all__ += ["OwnedElsewhereError", "StreamMovingError"]


class OwnedElsewhereError(StoreUnavailableError):
    """This instance does not own ``stream_id``'s partition; the instance at ``url`` does.
    Nothing was written. Routing forwards the command there; if it reaches the HTTP edge (the
    hop limit ran out) the caller gets 503 and retries."""

    def __init__(self, stream_id: str, url: str) -> None:
        super().__init__(f"stream {stream_id!r} is written by the instance at {url}")
        self.stream_id = stream_id
        self.url = url


class StreamMovingError(StoreUnavailableError):
    """``stream_id``'s partition is changing hands; nobody writes it until the new owner has
    fenced the old one and read the partition to its end. Nothing was written; retry after
    ``retry_after`` seconds."""

    def __init__(self, stream_id: str, retry_after: float = 1.0) -> None:
        super().__init__(f"stream {stream_id!r} is moving to another instance; retry shortly")
        self.stream_id = stream_id
        self.retry_after = retry_after
