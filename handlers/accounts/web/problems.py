"""The accounts slice's problem types (``balance_problem_types``), and the OpenAPI description
of the problem responses its operations can give."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from litestar.openapi.datastructures import ResponseSpec

from core.http.problems import problem_responses
from core.registry import ProblemType
from handlers.accounts import errors as domain

__all__ = ["PROBLEM_TYPES", "responses"]


def _field(exc: Any) -> tuple[str | None, Mapping[str, Any]]:
    return str(exc), {"field": exc.field}


def _account(exc: Any) -> tuple[str | None, Mapping[str, Any]]:
    return str(exc), {"account": exc.account_id}


def _insufficient(exc: Any) -> tuple[str | None, Mapping[str, Any]]:
    return "the amount is more than the account's balance", {"account": exc.account_id}


def _non_zero(exc: Any) -> tuple[str | None, Mapping[str, Any]]:
    return "the account still holds money; it closes at zero", {"account": exc.account_id}


def _feeds(exc: Any) -> tuple[str | None, Mapping[str, Any]]:
    return f"at most {exc.limit} account feeds may be open at once; close one first", {}


_t = ProblemType
PROBLEM_TYPES: Final[Mapping[type[BaseException], ProblemType]] = {
    domain.AccountNotFoundError: _t(
        "account-not-found",
        404,
        "Account not found",
        "No such account, or not one the caller may see.",
    ),
    domain.TransferNotFoundError: _t(
        "transfer-not-found",
        404,
        "Transfer not found",
        "No such transfer, or not one the caller may see.",
    ),
    domain.InsufficientFundsError: _t(
        "insufficient-funds",
        422,
        "Insufficient funds",
        "The amount is more than the balance; nothing was written.",
        _insufficient,
    ),
    domain.InvalidAmountError: _t(
        "invalid-amount",
        422,
        "Invalid amount",
        "Not plain decimal text, zero, negative, too many decimals for the currency, or over "
        "the maximum.",
        _field,
    ),
    domain.UnknownCurrencyError: _t(
        "unknown-currency",
        422,
        "Unknown currency",
        "Not an ISO 4217 code with minor units.",
        _field,
    ),
    domain.SameAccountError: _t(
        "same-account",
        422,
        "Same account",
        "A transfer's destination must differ from its source.",
        _field,
    ),
    domain.BalanceLimitError: _t(
        "balance-limit",
        422,
        "Balance limit",
        "The deposit would take the balance over the maximum balance.",
        _field,
    ),
    domain.IdempotencyConflictError: _t(
        "idempotency-key-reused",
        422,
        "Idempotency key reused",
        "The Idempotency-Key was already used with a different request body.",
    ),
    domain.InvalidRequestError: _t(
        "invalid-request",
        422,
        "Invalid request",
        "A field or parameter breaks a rule; `field` names it.",
        _field,
    ),
    domain.AccountClosedError: _t(
        "account-closed",
        409,
        "Account closed",
        "The account is closed; it takes no movements.",
        _account,
    ),
    domain.CurrencyMismatchError: _t(
        "currency-mismatch",
        409,
        "Currency mismatch",
        "The two accounts of a transfer hold different currencies.",
    ),
    domain.NonZeroBalanceError: _t(
        "non-zero-balance",
        409,
        "Balance is not zero",
        "An account closes only at a zero balance; withdraw or transfer the rest first.",
        _non_zero,
    ),
    domain.TooManyFeedsError: _t(
        "too-many-feeds",
        429,
        "Too many open feeds",
        "The caller has as many account feeds open as allowed (`BALANCE_FEEDS_PER_CALLER`); "
        "close one first.",
        _feeds,
    ),
}

_DESCRIPTIONS: Final = {
    409: "The account's state refuses this (`account-closed`, `currency-mismatch`, "
    "`non-zero-balance`, `concurrent-update`).",
    422: "A field breaks a rule (`validation-error`, `invalid-amount`, `unknown-currency`, "
    "`insufficient-funds`, `idempotency-key-reused`...); `field` names it.",
    429: "The caller has as many feeds open as allowed (`too-many-feeds`).",
}


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    """``problem_responses`` with this slice's problem types named in the descriptions."""
    return problem_responses(*statuses, descriptions=_DESCRIPTIONS)
