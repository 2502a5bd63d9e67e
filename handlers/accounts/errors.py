"""The accounts domain's typed errors. The HTTP layer maps each to one problem type."""

from __future__ import annotations

from core.errors import BalanceError, StoreUnavailableError

__all__ = [
    "AccountClosedError",
    "AccountNotFoundError",
    "CurrencyMismatchError",
    "DomainError",
    "IdempotencyConflictError",
    "InsufficientFundsError",
    "InvalidAmountError",
    "InvalidRequestError",
    "NonZeroBalanceError",
    "SameAccountError",
    "TooManyFeedsError",
    "TransferAcrossInstancesError",
    "TransferNotFoundError",
    "TransferStepUnknownError",
    "UnknownCurrencyError",
]


class DomainError(BalanceError):
    """A rule of the accounts domain refused the command; nothing was written."""


class InvalidRequestError(DomainError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidAmountError(InvalidRequestError):
    pass


class UnknownCurrencyError(InvalidRequestError):
    def __init__(self, code: str, field: str = "currency") -> None:
        super().__init__(field, f"{code!r} is not an ISO 4217 currency with minor units")
        self.code = code


class SameAccountError(InvalidRequestError):
    def __init__(self) -> None:
        super().__init__("destination", "must differ from the source account")


class AccountNotFoundError(DomainError):
    """Also raised for an account the caller may not see: existence is never revealed."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id} not found")
        self.account_id = account_id


class TransferNotFoundError(DomainError):
    def __init__(self, transfer_id: str) -> None:
        super().__init__(f"transfer {transfer_id} not found")
        self.transfer_id = transfer_id


class InsufficientFundsError(DomainError):
    def __init__(self, account_id: str, balance: int, amount: int) -> None:
        super().__init__(f"account {account_id} holds {balance}, which is less than {amount}")
        self.account_id = account_id
        self.balance = balance
        self.amount = amount


class AccountClosedError(DomainError):
    def __init__(self, account_id: str) -> None:
        super().__init__(f"account {account_id} is closed")
        self.account_id = account_id


class CurrencyMismatchError(DomainError):
    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"currency {actual} does not match the account's {expected}")
        self.expected = expected
        self.actual = actual


class NonZeroBalanceError(DomainError):
    def __init__(self, account_id: str, balance: int) -> None:
        super().__init__(f"account {account_id} holds {balance} and closes only at zero")
        self.account_id = account_id
        self.balance = balance


class IdempotencyConflictError(DomainError):
    def __init__(self, command_id: str) -> None:
        super().__init__(f"command id {command_id!r} was already used for a different command")
        self.command_id = command_id


class BalanceLimitError(InvalidRequestError):
    def __init__(self) -> None:
        super().__init__("amount", "would take the balance over the maximum balance")


class TooManyFeedsError(BalanceError):
    """The caller already has ``limit`` account feeds open; one must end before another opens."""

    def __init__(self, caller: str, limit: int) -> None:
        super().__init__(f"{caller!r} already has {limit} account feeds open, the most allowed")
        self.caller = caller
        self.limit = limit


class TransferAcrossInstancesError(StoreUnavailableError):
    """A step of the transfer acts on an account another instance writes, and the instances of
    this deployment share no secret to sign the step they would send it (a JWT secret); refused
    before anything is written."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(
            f"stream {stream_id!r} is written by another instance, and the instances share no "
            "secret (BALANCE_JWT_SECRET) to send it a transfer's step"
        )
        self.stream_id = stream_id


class TransferStepUnknownError(StoreUnavailableError):
    """A step of the transfer got no definite answer from the instance that writes its account,
    after several attempts. Before the transfer was recorded nothing was written; after, the
    transfer stays pending and is finished later: retry with the same Idempotency-Key."""

    def __init__(self, transfer_id: str, stream_id: str, why: str) -> None:
        super().__init__(
            f"transfer {transfer_id}: the instance that writes {stream_id!r} gave no definite "
            "answer; retry with the same Idempotency-Key"
        )
        self.transfer_id = transfer_id
        self.stream_id = stream_id
        self.why = why  # for the log: it may name an internal address
