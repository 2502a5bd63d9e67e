"""The steps of a transfer as messages: each acts on one account and runs at the instance that
writes it, locally or sent there (``step_router``), and each answers with an outcome rather
than an exception, so that a step's answer travels between instances as it is.

- ``CheckSource``: the caller may move money out of the source, the amount is valid in its
  currency and the source could be debited now; done with the source's owner, currency and the
  amount in minor units.
- ``CheckDestination``: the destination takes the credit (currency, status, balance), answered
  as "not found" to a caller who may not see it whatever refuses it.
- ``Debit``, ``Credit``, ``Refund``: the movements, each idempotent by transfer id (an account
  remembers the transfers it was debited, credited and refunded for).

Outcomes: ``Done``; ``Refused`` with the reason (the domain error, rebuilt by ``refused_error``
where the caller must see it); ``Unknown`` when the account's writer could not act now (it does
not write the account any more, its store is unavailable): the step may be sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from core.auth import Principal
from handlers.accounts.account import account_stream
from handlers.accounts.errors import (
    AccountClosedError,
    AccountNotFoundError,
    BalanceLimitError,
    CurrencyMismatchError,
    DomainError,
    InsufficientFundsError,
    InvalidAmountError,
    InvalidRequestError,
    UnknownCurrencyError,
)

__all__ = [
    "CheckDestination",
    "CheckSource",
    "Credit",
    "Debit",
    "Done",
    "Outcome",
    "Refund",
    "Refused",
    "Step",
    "Unknown",
    "decode_outcome",
    "decode_step",
    "encode",
    "reason_of",
    "refusal",
    "refused_error",
    "step_stream",
]


class CheckSource(msgspec.Struct, frozen=True, tag="check_source"):
    transfer_id: str
    account_id: str
    destination: str
    amount: str  # as the caller wrote it: parsed in the source's currency
    caller: Principal
    description: str | None = None


class CheckDestination(msgspec.Struct, frozen=True, tag="check_destination"):
    transfer_id: str
    account_id: str
    source: str
    currency: str
    amount: int
    caller: Principal
    description: str | None = None


class Debit(msgspec.Struct, frozen=True, tag="debit"):
    transfer_id: str
    account_id: str
    destination: str
    amount: int
    description: str | None = None


class Credit(msgspec.Struct, frozen=True, tag="credit"):
    transfer_id: str
    account_id: str
    source: str
    amount: int
    description: str | None = None


class Refund(msgspec.Struct, frozen=True, tag="refund"):
    transfer_id: str
    account_id: str
    amount: int
    reason: str


Step = CheckSource | CheckDestination | Debit | Credit | Refund


class Done(msgspec.Struct, frozen=True, tag="done"):
    # CheckSource's answer; empty for the other steps.
    owner: str = ""
    currency: str = ""
    amount: int = 0


class Refused(msgspec.Struct, frozen=True, tag="refused"):
    """``reason``: what a failed transfer records; ``error`` and ``details``: the domain error,
    for ``refused_error``."""

    reason: str
    error: str
    message: str
    details: dict[str, str | int] = {}


class Unknown(msgspec.Struct, frozen=True, tag="unknown"):
    why: str


Outcome = Done | Refused | Unknown


def step_stream(step: Step) -> str:
    """The stream the step acts on: its writer runs it."""
    return account_stream(step.account_id)


_encoder: Final = msgspec.json.Encoder()
_steps: Final = msgspec.json.Decoder(Step)
_outcomes: Final = msgspec.json.Decoder(Outcome)


def encode(message: Step | Outcome) -> bytes:
    return _encoder.encode(message)


def decode_step(body: bytes) -> Step:
    """``msgspec.ValidationError`` / ``DecodeError`` on anything but a step."""
    step: Step = _steps.decode(body)
    return step


def decode_outcome(body: bytes) -> Outcome:
    outcome: Outcome = _outcomes.decode(body)
    return outcome


def reason_of(error: DomainError) -> str:
    """What a failed transfer records as its reason."""
    if isinstance(error, InsufficientFundsError):
        return "insufficient_funds"
    if isinstance(error, AccountClosedError):
        return "account_closed"
    return type(error).__name__


# The domain errors a step may answer, with their details and how to rebuild them.
_Rebuild = Callable[[dict[str, str | int]], DomainError]
_DETAILS: Final[dict[type[DomainError], tuple[tuple[str, ...], _Rebuild]]] = {
    InsufficientFundsError: (
        ("account_id", "balance", "amount"),
        lambda d: InsufficientFundsError(str(d["account_id"]), int(d["balance"]), int(d["amount"])),
    ),
    AccountClosedError: (("account_id",), lambda d: AccountClosedError(str(d["account_id"]))),
    AccountNotFoundError: (("account_id",), lambda d: AccountNotFoundError(str(d["account_id"]))),
    CurrencyMismatchError: (
        ("expected", "actual"),
        lambda d: CurrencyMismatchError(str(d["expected"]), str(d["actual"])),
    ),
    BalanceLimitError: ((), lambda d: BalanceLimitError()),
    UnknownCurrencyError: (
        ("code", "field"),
        lambda d: UnknownCurrencyError(str(d["code"]), str(d["field"])),
    ),
    InvalidAmountError: (
        ("field", "reason"),
        lambda d: InvalidAmountError(str(d["field"]), str(d["reason"])),
    ),
    InvalidRequestError: (
        ("field", "reason"),
        lambda d: InvalidRequestError(str(d["field"]), str(d["reason"])),
    ),
}


def refusal(error: DomainError) -> Refused:
    """The outcome that carries ``error`` to the step's sender."""
    known = _DETAILS.get(type(error))
    details = {} if known is None else {name: getattr(error, name) for name in known[0]}
    return Refused(reason_of(error), type(error).__name__, str(error), details)


def refused_error(outcome: Refused) -> DomainError:
    """The domain error a refusal carries, as the step raised it."""
    for cls, (_names, rebuild) in _DETAILS.items():
        if cls.__name__ == outcome.error:
            try:
                return rebuild(outcome.details)
            except (KeyError, ValueError):
                break
    return DomainError(outcome.message)
