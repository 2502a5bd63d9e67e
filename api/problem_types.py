"""Which error becomes which problem: every typed error maps to a status, a stable problem
``type`` and a title, answered as RFC 9457 ``application/problem+json`` (``core.http.problems``).

A client mistake is never a 500: refusals, bad tokens, Litestar's own validation errors,
oversized or malformed bodies all have a problem type, here for the shell and the kernel, and
each plugin's through ``balance_problem_types``. Anything else is a bug, answered with a 500
problem that carries the request id and nothing internal.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, Final

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from core.auth import (
    AuthenticationError,
    AuthenticatorUnavailableError,
    ForbiddenError,
    MissingTokenError,
)
from core.config import ConfigError
from core.errors import BalanceError, ConcurrencyError, StoreUnavailableError
from core.http.problems import (
    PROBLEM_BASE,
    PROBLEM_MEDIA_TYPE,
    REALM,
    FieldError,
    InvalidHeaderError,
    MalformedBodyError,
    Problem,
    UnsupportedMediaTypeError,
)
from core.http.request_id import current_request_id, new_request_id
from core.registry import ProblemType

__all__ = ["PROBLEMS_STATE_KEY", "SHELL_PROBLEM_TYPES", "ProblemCatalog"]

# Where ``create_app`` puts the app's catalog in the app's state (for the ``/problems`` routes).
PROBLEMS_STATE_KEY: Final = "problems"

log = logging.getLogger("balance.api")

_t = ProblemType
_VALIDATION = _t(
    "validation-error",
    422,
    "Validation failed",
    "The body or a parameter has the wrong shape or type; `errors` lists each field.",
)
# Not an exception class of its own: a ConcurrencyError on a request that sent If-Match.
_PRECONDITION = _t(
    "precondition-failed",
    412,
    "Precondition failed",
    "If-Match named a version the account is no longer at; read it again and retry.",
)
_INTERNAL = _t(
    "internal-error", 500, "Internal server error", "A bug; quote `request_id` when reporting it."
)

SHELL_PROBLEM_TYPES: Final[Mapping[type[BaseException], ProblemType]] = {
    MissingTokenError: _t(
        "missing-token", 401, "Authentication required", "Send `Authorization: Bearer <JWT>`."
    ),
    AuthenticationError: _t(
        "invalid-token",
        401,
        "Invalid token",
        "The bearer token failed verification (signature, expiry, issuer, audience...).",
    ),
    AuthenticatorUnavailableError: _t(
        "authenticator-unavailable",
        503,
        "Authenticator unavailable",
        "The token's signing keys cannot be fetched right now; retry later.",
    ),
    ForbiddenError: _t(
        "insufficient-scope",
        403,
        "Insufficient scope",
        "The token lacks the scope this request needs (`accounts:read` or `accounts:write`).",
    ),
    ConcurrencyError: _t(
        "concurrent-update",
        409,
        "Concurrent update",
        "Another request changed the account at the same moment; retry.",
    ),
    StoreUnavailableError: _t(
        "store-unavailable", 503, "Service unavailable", "The event store cannot be reached; retry."
    ),
    MalformedBodyError: _t(
        "malformed-json",
        400,
        "Malformed JSON",
        "The body is empty, not JSON, or nests arrays and objects more than 32 levels deep.",
    ),
    UnsupportedMediaTypeError: _t(
        "unsupported-media-type",
        415,
        "Unsupported media type",
        "Bodies are JSON: send `Content-Type: application/json`.",
    ),
    InvalidHeaderError: _t(
        "invalid-header",
        400,
        "Invalid header",
        "A header (If-Match, Idempotency-Key, Content-Length) is malformed; `field` names it.",
    ),
    RequestEntityTooLarge: _t(
        "body-too-large", 413, "Body too large", "The request body is over the size limit."
    ),
    ValidationException: _VALIDATION,
    NotFoundException: _t("not-found", 404, "Not found", "No resource at this path."),
    MethodNotAllowedException: _t(
        "method-not-allowed", 405, "Method not allowed", "The path does not take this method."
    ),
}
_EXTRA_TYPES: Final = (_PRECONDITION, _VALIDATION, _INTERNAL)

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


def _detail(exc: BaseException) -> tuple[str | None, Mapping[str, Any]]:
    """The human-readable detail and the extension members for ``exc``."""
    match exc:
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


class ProblemCatalog:
    """The problem types of one app: the shell's, then each plugin's. ``respond`` is the app's
    exception handler for every exception."""

    def __init__(self, contributed: Iterable[Mapping[type[BaseException], ProblemType]]) -> None:
        types: dict[type[BaseException], ProblemType] = dict(SHELL_PROBLEM_TYPES)
        for mapping in contributed:
            types.update(mapping)
        self._types = types
        self._resolved: dict[type[BaseException], ProblemType | None] = {}
        by_slug = {problem.slug: problem for problem in types.values()}
        by_slug.update((problem.slug, problem) for problem in _EXTRA_TYPES)
        self.by_slug: Final[Mapping[str, ProblemType]] = by_slug

    def lookup(self, exc: BaseException) -> ProblemType | None:
        # Most specific first is not needed: the lookup walks each error's MRO.
        kind = type(exc)
        try:
            return self._resolved[kind]
        except KeyError:
            pass
        found = next((self._types[cls] for cls in kind.__mro__ if cls in self._types), None)
        self._resolved[kind] = found
        return found

    def respond(self, request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
        problem_type = self.lookup(exc)
        headers: dict[str, str] = {}
        if problem_type is None:
            if isinstance(exc, HTTPException):
                status = exc.status_code
                phrase = HTTPStatus(status).phrase
                problem_type = ProblemType("about:blank", status, phrase, phrase)
            else:
                problem_type = _INTERNAL
        elif isinstance(exc, ConcurrencyError) and "if-match" in request.headers:
            problem_type = _PRECONDITION
        status = problem_type.status
        if status >= 500:
            log.error("request failed", exc_info=exc)
            if status == 503:
                headers["Retry-After"] = _retry_after(exc)
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
        if problem_type is _INTERNAL:
            detail, extra = _detail(RuntimeError())
        elif problem_type.detail is not None:
            detail, extra = problem_type.detail(exc)
        else:
            detail, extra = _detail(exc)
        uri = problem_type.slug
        if uri != "about:blank":
            uri = PROBLEM_BASE + uri
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


def _retry_after(exc: Exception) -> str:
    """Whole seconds, at least 1: what the error suggests, else 1."""
    seconds = getattr(exc, "retry_after", 1.0)
    return str(max(1, math.ceil(seconds)))
