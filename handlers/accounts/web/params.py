"""What the accounts routes read from a request besides its body: the query parameters (page
sizes, versions, cursors, owners and instants, each read strictly, ``core.http.query``, and
documented in the OpenAPI document) and a command's context (the caller and the command headers)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final, TypeAlias

from litestar.openapi.spec import OpenAPIFormat
from litestar.params import QueryParameter

from core.http.query import QueryInt
from core.http.request import ApiRequest
from handlers.accounts.errors import InvalidRequestError
from handlers.accounts.messages import CommandContext
from handlers.accounts.query_handlers import MAX_PAGE

__all__ = [
    "ANY_VERSION",
    "DEFAULT_PAGE_SIZE",
    "Cursor",
    "From",
    "Instant",
    "Limit",
    "MinVersion",
    "Owner",
    "PageSize",
    "Version",
    "command_context",
    "parse_instant",
]


class PageSize(QueryInt):
    minimum = 1
    maximum = MAX_PAGE


class Version(QueryInt):
    """An account's or a transfer's version (``min_version``)."""


# The defaults, as instances: Litestar passes an instance of the parameter's type through as is.
DEFAULT_PAGE_SIZE: Final = PageSize(50)
ANY_VERSION: Final = Version(0)

_MIN_VERSION = (
    "Wait briefly until the read model has reached this version (read-your-writes): "
    "pass the version a command returned"
)
MinVersion: TypeAlias = Annotated[
    Version, QueryParameter(description=_MIN_VERSION, schema_extra=Version.schema())
]
Limit: TypeAlias = Annotated[
    PageSize, QueryParameter(description="Page size", schema_extra=PageSize.schema())
]
_INSTANT = "ISO-8601 date-time with offset, e.g. 2026-01-31T12:00:00Z"
_DATE_TIME = OpenAPIFormat.DATE_TIME
Instant: TypeAlias = Annotated[str | None, QueryParameter(description=_INSTANT, format=_DATE_TIME)]
From: TypeAlias = Annotated[
    str | None, QueryParameter(name="from", description=_INSTANT, format=_DATE_TIME)
]
# What ``next_cursor`` holds: unpadded URL-safe base64 (handlers.accounts.query_handlers).
Cursor: TypeAlias = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[A-Za-z0-9_-]+$",
        max_length=200,
        description="A `next_cursor` of the previous page",
    ),
]
Owner: TypeAlias = Annotated[
    str | None,
    QueryParameter(min_length=1, max_length=100, description="Tellers: only this owner's"),
]


# In a query string an unescaped "+" arrives as a space: "...T10:00:00 01:00" meant "+01:00".
_SPACE_OFFSET: Final = re.compile(r" (\d{2}:?\d{2})$")


def parse_instant(name: str, value: str | None) -> datetime | None:
    """An ISO-8601 instant with a UTC offset (``Z`` or ``+01:00``); naive times are refused,
    since they name no instant, and so are instants outside the years 0001 to 9999 in UTC."""
    if value is None:
        return None
    text = _SPACE_OFFSET.sub(r"+\1", value.strip())
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(name, f"{value!r} is not an ISO-8601 date-time") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidRequestError(name, "needs a UTC offset, e.g. 2026-01-31T12:00:00Z")
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+14:00 is in year 0 in UTC, which datetime cannot hold.
        raise InvalidRequestError(name, "is outside the years 0001 to 9999 in UTC") from None


async def command_context(request: ApiRequest, *, versioned: bool = False) -> CommandContext:
    """The caller, ``Idempotency-Key`` as the command id and ``X-Request-ID`` as the correlation
    id; with ``versioned``, also ``If-Match`` as the expected version (for commands on one
    account)."""
    principal = await request.principal()
    return CommandContext(
        actor=principal,
        command_id=request.idempotency_key(),
        correlation_id=request.request_id,
        expected_version=request.expected_version() if versioned else None,
    )
