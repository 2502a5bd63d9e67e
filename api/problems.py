"""The one place where errors become HTTP: every typed error maps to a status, a stable problem
``type`` and a title, answered as RFC 9457 ``application/problem+json``.

A client mistake is never a 500: domain refusals, bad tokens, Litestar's own validation errors,
oversized or malformed bodies all have a problem type here. Anything else is a bug, answered with
a 500 problem that carries the request id and nothing internal.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec

from api.observability import current_request_id, new_request_id
from core.auth import (
    AuthenticationError,
    AuthenticatorUnavailableError,
    ForbiddenError,
    MissingTokenError,
)
from core.config import ConfigError
from core.errors import BalanceError, ConcurrencyError, StoreUnavailableError
from handlers.accounts import errors as domain

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPES",
    "REALM",
    "FieldError",
    "InvalidHeaderError",
    "MalformedBodyError",
    "Problem",
    "ProblemType",
    "UnsupportedMediaTypeError",
    "problem_response",
    "problem_responses",
    "problem_type_uri",
]

log = logging.getLogger("balance.api")

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


@dataclass(frozen=True, slots=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str


def _type(slug: str, status: int, title: str, description: str) -> ProblemType:
    return ProblemType(slug, status, title, description)


_INVALID_REQUEST = _type(
    "invalid-request",
    422,
    "Invalid request",
    "A field or parameter breaks a rule; `field` names it.",
)
_VALIDATION = _type(
    "validation-error",
    422,
    "Validation failed",
    "The body or a parameter has the wrong shape or type; `errors` lists each field.",
)
_PRECONDITION = _type(
    "precondition-failed",
    412,
    "Precondition failed",
    "If-Match named a version the account is no longer at; read it again and retry.",
)
_INTERNAL = _type(
    "internal-error", 500, "Internal server error", "A bug; quote `request_id` when reporting it."
)

# Most specific first is not needed: the lookup walks each error's MRO.
PROBLEM_TYPES: Final[Mapping[type[BaseException], ProblemType]] = {
    MissingTokenError: _type(
        "missing-token", 401, "Authentication required", "Send `Authorization: Bearer <JWT>`."
    ),
    AuthenticationError: _type(
        "invalid-token",
        401,
        "Invalid token",
        "The bearer token failed verification (signature, expiry, issuer, audience...).",
    ),
    AuthenticatorUnavailableError: _type(
        "authenticator-unavailable",
        503,
        "Authenticator unavailable",
        "The token's signing keys cannot be fetched right now; retry later.",
    ),
    ForbiddenError: _type(
        "insufficient-scope",
        403,
        "Insufficient scope",
        "The token lacks the scope this request needs (`accounts:read` or `accounts:write`).",
    ),
    domain.AccountNotFoundError: _type(
        "account-not-found",
        404,
        "Account not found",
        "No such account, or not one the caller may see.",
    ),
    domain.TransferNotFoundError: _type(
        "transfer-not-found",
        404,
        "Transfer not found",
        "No such transfer, or not one the caller may see.",
    ),
    domain.InsufficientFundsError: _type(
        "insufficient-funds",
        422,
        "Insufficient funds",
        "The amount is more than the balance; nothing was written.",
    ),
    domain.InvalidAmountError: _type(
        "invalid-amount",
        422,
        "Invalid amount",
        "Not plain decimal text, zero, negative, too many decimals for the currency, or over "
        "the maximum.",
    ),
    domain.UnknownCurrencyError: _type(
        "unknown-currency", 422, "Unknown currency", "Not an ISO 4217 code with minor units."
    ),
    domain.SameAccountError: _type(
        "same-account", 422, "Same account", "A transfer's destination must differ from its source."
    ),
    domain.BalanceLimitError: _type(
        "balance-limit",
        422,
        "Balance limit",
        "The deposit would take the balance over the maximum balance.",
    ),
    domain.IdempotencyConflictError: _type(
        "idempotency-key-reused",
        422,
        "Idempotency key reused",
        "The Idempotency-Key was already used with a different request body.",
    ),
    domain.InvalidRequestError: _INVALID_REQUEST,
    domain.AccountClosedError: _type(
        "account-closed", 409, "Account closed", "The account is closed; it takes no movements."
    ),
    domain.CurrencyMismatchError: _type(
        "currency-mismatch",
        409,
        "Currency mismatch",
        "The two accounts of a transfer hold different currencies.",
    ),
    domain.NonZeroBalanceError: _type(
        "non-zero-balance",
        409,
        "Balance is not zero",
        "An account closes only at a zero balance; withdraw or transfer the rest first.",
    ),
    ConcurrencyError: _type(
        "concurrent-update",
        409,
        "Concurrent update",
        "Another request changed the account at the same moment; retry.",
    ),
    StoreUnavailableError: _type(
        "store-unavailable", 503, "Service unavailable", "The event store cannot be reached; retry."
    ),
    MalformedBodyError: _type(
        "malformed-json",
        400,
        "Malformed JSON",
        "The body is empty, not JSON, or nests arrays and objects more than 32 levels deep.",
    ),
    UnsupportedMediaTypeError: _type(
        "unsupported-media-type",
        415,
        "Unsupported media type",
        "Bodies are JSON: send `Content-Type: application/json`.",
    ),
    InvalidHeaderError: _type(
        "invalid-header",
        400,
        "Invalid header",
        "A header (If-Match, Idempotency-Key, Content-Length) is malformed; `field` names it.",
    ),
    RequestEntityTooLarge: _type(
        "body-too-large", 413, "Body too large", "The request body is over the size limit."
    ),
    ValidationException: _VALIDATION,
    NotFoundException: _type("not-found", 404, "Not found", "No resource at this path."),
    MethodNotAllowedException: _type(
        "method-not-allowed", 405, "Method not allowed", "The path does not take this method."
    ),
}
# Not an exception class of its own: a ConcurrencyError on a request that sent If-Match.
EXTRA_TYPES: Final = (_PRECONDITION, _VALIDATION, _INTERNAL)
_resolved: dict[type[BaseException], ProblemType | None] = {}


def problem_type_uri(slug: str) -> str:
    return PROBLEM_BASE + slug


@functools.cache
def all_problem_types() -> dict[str, ProblemType]:
    """Every problem type by slug, for the ``/problems`` documentation routes."""
    found = {problem.slug: problem for problem in PROBLEM_TYPES.values()}
    found.update((problem.slug, problem) for problem in EXTRA_TYPES)
    return found


def _lookup(exc: BaseException) -> ProblemType | None:
    kind = type(exc)
    try:
        return _resolved[kind]
    except KeyError:
        pass
    found = next((PROBLEM_TYPES[cls] for cls in kind.__mro__ if cls in PROBLEM_TYPES), None)
    _resolved[kind] = found
    return found


_UNKNOWN_FIELD = re.compile(r"(?:unknown|required) field `([^`]+)`")
_AT_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


def _validation_errors(exc: ValidationException) -> list[FieldError]:
    errors: list[FieldError] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", ""))
        field = str(item.get("key") or "body")
        if (unknown := _UNKNOWN_FIELD.search(message)) is not None:
            field = unknown.group(1)
        elif field == "data":
            field = "body"
        if (nested := _AT_PATH.search(message)) is not None:
            message = message[: nested.start()]
            if nested.group(1):
                field = f"{field}.{nested.group(1)}" if field != "body" else nested.group(1)
        # Litestar gives the source as a ParamType (a str Enum: str() would be "ParamType.QUERY").
        source = item.get("source") or "body"
        errors.append(FieldError(field, message, str(getattr(source, "value", source))))
    return errors


def _www_authenticate(exc: BaseException) -> str | None:
    if isinstance(exc, MissingTokenError):
        return f'Bearer realm="{REALM}"'
    if isinstance(exc, AuthenticationError):
        reason = exc.reason.replace('"', "'").replace("\\", "/")
        return f'Bearer realm="{REALM}", error="invalid_token", error_description="{reason}"'
    if isinstance(exc, ForbiddenError):
        return f'Bearer realm="{REALM}", error="insufficient_scope", scope="{exc.scope}"'
    return None


def _detail(exc: BaseException) -> tuple[str | None, dict[str, Any]]:
    """The human-readable detail and the extension members for ``exc``."""
    match exc:
        case domain.InsufficientFundsError():
            return "the amount is more than the account's balance", {"account": exc.account_id}
        case domain.NonZeroBalanceError():
            return "the account still holds money; it closes at zero", {"account": exc.account_id}
        case domain.AccountClosedError():
            return str(exc), {"account": exc.account_id}
        case domain.InvalidRequestError():
            return str(exc), {"field": exc.field}
        case InvalidHeaderError():
            return str(exc), {"field": exc.header}
        case ConcurrencyError():
            return (
                f"the account is at version {exc.actual}, not {exc.expected}",
                {"current_version": exc.actual},
            )
        case AuthenticationError() | AuthenticatorUnavailableError():
            return exc.reason, {}
        case ValidationException():
            errors = _validation_errors(exc)
            first = errors[0].field if errors else None
            detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or exc.detail
            return detail, {"errors": errors, "field": first}
        case HTTPException():
            return exc.detail, {}
        case BalanceError() if not isinstance(exc, ConfigError):
            return str(exc), {}
        case _:
            return "an unexpected error occurred; quote the request id when reporting it", {}


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Litestar's exception handler for every exception."""
    problem_type = _lookup(exc)
    headers: dict[str, str] = {}
    if problem_type is None:
        if isinstance(exc, HTTPException):
            status = exc.status_code
            problem_type = ProblemType(
                "about:blank", status, HTTPStatus(status).phrase, HTTPStatus(status).phrase
            )
        else:
            problem_type = _INTERNAL
    elif isinstance(exc, ConcurrencyError) and "if-match" in request.headers:
        problem_type = _PRECONDITION
    status = problem_type.status
    if status >= 500:
        log.error("request failed", exc_info=exc)
        if status == 503:
            headers["Retry-After"] = "1"
    if isinstance(exc, HTTPException) and exc.headers:
        headers.update(exc.headers)
    challenge = _www_authenticate(exc)
    if challenge is not None:
        headers["WWW-Authenticate"] = challenge
    request_id = current_request_id()
    if request_id is None:
        # Not routed (404/405 before any route): the observability middleware did not run.
        request_id = new_request_id()
        headers["X-Request-ID"] = request_id
    # A 500 says nothing about its cause: the log has it, under the same request id.
    detail, extra = _detail(RuntimeError() if problem_type is _INTERNAL else exc)
    uri = (
        problem_type.slug
        if problem_type.slug == "about:blank"
        else PROBLEM_BASE + problem_type.slug
    )
    problem = Problem(
        type=uri,
        title=problem_type.title,
        status=status,
        detail=detail,
        instance=request.scope.get("path"),
        request_id=request_id,
        **extra,
    )
    return Response(problem, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "A malformed body or header (`malformed-json`, `invalid-header`).",
    401: "No token, or a token that fails verification (`missing-token`, `invalid-token`).",
    403: "The token lacks the needed scope (`insufficient-scope`).",
    404: "No such resource, or one the caller may not see.",
    409: "The account's state refuses this (`account-closed`, `currency-mismatch`, "
    "`non-zero-balance`, `concurrent-update`).",
    412: "If-Match names a version the account is no longer at (`precondition-failed`).",
    413: "The body is over the size limit (`body-too-large`).",
    415: "The body is not `application/json` (`unsupported-media-type`).",
    422: "A field breaks a rule (`validation-error`, `invalid-amount`, `unknown-currency`, "
    "`insufficient-funds`, `idempotency-key-reused`...); `field` names it.",
    500: "A bug (`internal-error`).",
    503: "A backend is unavailable (`store-unavailable`, `authenticator-unavailable`).",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the problem responses an operation can give, and of 500.

    Litestar documents a 400 of its own shape (``status_code``, ``detail``, ``extra``) on every
    operation with a body or parameters; this API never sends it, so 400 is documented as the
    problem document too, wherever Litestar would add it.
    """
    return {
        status: ResponseSpec(
            data_container=Problem,
            generate_examples=False,
            description=_DESCRIPTIONS[status],
            media_type=PROBLEM_MEDIA_TYPE,
        )
        for status in sorted({*statuses, 400, 500})
    }
