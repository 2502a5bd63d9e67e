"""The RFC 9457 problem document (``application/problem+json``), the HTTP layer's own errors,
and the OpenAPI description of the problem responses an operation can give.

Which error becomes which problem is ``api.problem_types``: the shell's and the kernel's types
there, each plugin's through ``balance_problem_types``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec
from litestar.openapi.datastructures import ResponseSpec

from core.errors import BalanceError

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_MEDIA_TYPE",
    "REALM",
    "FieldError",
    "InvalidHeaderError",
    "MalformedBodyError",
    "Problem",
    "UnsupportedMediaTypeError",
    "problem_responses",
    "problem_type_uri",
]

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
PROBLEM_BASE: Final = "/problems/"
REALM: Final = "account-balance"


# ---- the HTTP layer's own errors ----


class MalformedBodyError(BalanceError):
    """The body is not well-formed JSON."""


class UnsupportedMediaTypeError(BalanceError):
    def __init__(self, content_type: str) -> None:
        super().__init__(f"send the body as application/json, not {content_type or 'no type'}")
        self.content_type = content_type


class InvalidHeaderError(BalanceError):
    def __init__(self, header: str, reason: str) -> None:
        super().__init__(f"{header}: {reason}")
        self.header = header
        self.reason = reason


# ---- the problem document ----


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str
    source: str = "body"


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """RFC 9457 problem details, with the extension members this API uses."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    field: str | None = None
    errors: list[FieldError] | None = None
    account: str | None = None
    current_version: int | None = None


def problem_type_uri(slug: str) -> str:
    return PROBLEM_BASE + slug


_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "A malformed body or header (`malformed-json`, `invalid-header`).",
    401: "No token, or a token that fails verification (`missing-token`, `invalid-token`).",
    403: "The token lacks the needed scope (`insufficient-scope`).",
    404: "No such resource, or one the caller may not see.",
    409: "The resource's state refuses this (`concurrent-update`).",
    412: "If-Match names a version the account is no longer at (`precondition-failed`).",
    413: "The body is over the size limit (`body-too-large`).",
    415: "The body is not `application/json` (`unsupported-media-type`).",
    422: "A field breaks a rule (`validation-error`); `field` names it.",
    500: "A bug (`internal-error`).",
    503: "A backend is unavailable (`store-unavailable`, `authenticator-unavailable`).",
}


def problem_responses(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the problem responses an operation can give, and of 500;
    ``descriptions`` replaces the general description of a status (a plugin names its own
    problem types there).

    Litestar documents a 400 of its own shape (``status_code``, ``detail``, ``extra``) on every
    operation with a body or parameters; this API never sends it, so 400 is documented as the
    problem document too, wherever Litestar would add it.
    """
    return {
        status: ResponseSpec(
            data_container=Problem,
            generate_examples=False,
            description=(descriptions or {}).get(status) or _DESCRIPTIONS[status],
            media_type=PROBLEM_MEDIA_TYPE,
        )
        for status in sorted({*statuses, 400, 500})
    }
