"""What a command takes from the request's headers, besides the caller (``core.http.request``):

- ``Idempotency-Key`` becomes ``CommandContext.command_id`` (the domain replays the first result
  for a repeated key, and refuses the key with another body).
- ``If-Match: "3"`` (or ``W/"3"``) becomes ``expected_version`` on commands that act on one
  account (deposit, withdrawal, close).

And the other way: ``etag`` is the ``ETag`` of a version.
"""

from __future__ import annotations

import re
from typing import Any, Final

from litestar import Request

from core.http.problems import InvalidHeaderError

__all__ = ["etag", "expected_version", "idempotency_key"]

_KEY: Final = re.compile(r"[\x21-\x7e]{1,255}")
_ETAG: Final = re.compile(r'(?:W/)?"(\d{1,18})"')


def etag(version: int) -> str:
    return f'"{version}"'


def _header(request: Request[Any, Any, Any], name: bytes) -> str | None:
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = _header(request, b"idempotency-key")
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise InvalidHeaderError("Idempotency-Key", "must be 1 to 255 visible ASCII characters")
    return key


def expected_version(request: Request[Any, Any, Any]) -> int | None:
    value = _header(request, b"if-match")
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.fullmatch(value.strip())
    if match is None:
        raise InvalidHeaderError("If-Match", 'must be one entity tag such as "3"')
    return int(match.group(1))
