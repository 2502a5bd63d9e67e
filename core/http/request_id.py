"""The request's correlation id (``X-Request-ID``, or one made up), for logs, problem documents
and the commands a request sends. The shell's middleware sets ``REQUEST_ID`` per request."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Final

from core.entropy import random_bytes

__all__ = ["REQUEST_ID", "current_request_id", "new_request_id"]

REQUEST_ID: Final[ContextVar[str | None]] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return REQUEST_ID.get()


def new_request_id() -> str:
    return random_bytes(16).hex()
