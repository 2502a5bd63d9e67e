"""The examples the OpenAPI document gives of the accounts slice's bodies, as the routes'
``operation_class``: one story, Alice's euro account, told the way the API answers it. The
responses are built as the response Structs and encoded as the API encodes them, so they keep
the bodies' shape; ``test_openapi_document`` checks each example against its schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal

import msgspec

from core.http.examples import documented_header, example, with_examples
from handlers.accounts.web.schemas import (
    AccountOut,
    AccountPage,
    BalanceOut,
    MovementOut,
    StatementOut,
    TransferOut,
)

__all__ = [
    "BALANCE",
    "DEPOSIT",
    "ETAG",
    "FEED",
    "LIST",
    "LOCATION",
    "OPEN",
    "READ",
    "STATEMENT",
    "TRANSFER",
    "TRANSFER_LOCATION",
    "TRANSFER_READ",
    "WITHDRAW",
]

ETAG: Final = documented_header("ETag", 'The version, e.g. "3"', '"3"')
LOCATION: Final = documented_header(
    "Location", "/accounts/{id}", "/accounts/01a2498e-1ea9-7f28-bd5f-f973616ab857"
)
TRANSFER_LOCATION: Final = documented_header(
    "Location", "/transfers/{id}", "/transfers/01a2498e-1eb2-7867-bc44-a7ff7166e0e5"
)

_ALICE: Final = "01a2498e-1ea9-7f28-bd5f-f973616ab857"
_BOB: Final = "01a2498e-1eac-7d82-a9f1-0e6ad73f6ef5"
_TRANSFER: Final = "01a2498e-1eb2-7867-bc44-a7ff7166e0e5"


def _at(minute: int, second: int) -> datetime:
    return datetime(2026, 3, 2, 9, minute, second, 120000, tzinfo=UTC)


def _json(value: msgspec.Struct | list[Any]) -> Any:
    return msgspec.to_builtins(value)


_OPENED: Final = AccountOut(_ALICE, "alice", "EUR", "100.00", "open", 2, _at(0, 0), None)
_NOW: Final = AccountOut(_ALICE, "alice", "EUR", "85.00", "open", 5, _at(0, 0), None)
_INITIAL: Final = MovementOut(
    "01a2498e-1ea9-7802-a0bb-49c8cec91d71", _ALICE, "deposit", "100.00", "100.00", 2, _at(0, 0),
    description="initial deposit",
)  # fmt: skip
_DEPOSITED: Final = MovementOut(
    "01a2498e-1eae-7a1c-aad1-61611991d34c", _ALICE, "deposit", "25.00", "125.00", 3, _at(5, 30),
    description="salary",
)  # fmt: skip
_WITHDRAWN: Final = MovementOut(
    "01a2498e-1eb0-7f4e-98e9-0acfead448a6", _ALICE, "withdrawal", "10.00", "115.00", 4,
    _at(12, 4),
)  # fmt: skip
_SENT: Final = MovementOut(
    "01a2498e-1eb2-7f10-8c3a-5d2e9b7a4c61", _ALICE, "transfer_out", "30.00", "85.00", 5,
    _at(20, 45), description="rent", transfer_id=_TRANSFER, counterparty=_BOB,
)  # fmt: skip


def _transfer(
    status: Literal["pending", "completed", "failed"], reason: str | None = None
) -> TransferOut:
    at = _at(20, 45)
    return TransferOut(_TRANSFER, _ALICE, _BOB, "30.00", "EUR", status, at, "rent", reason)


OPEN: Final = with_examples(
    request={
        **example("With an initial deposit", {"currency": "EUR", "initial_deposit": "100.00"}),
        **example("By a teller, for a customer", {"currency": "EUR", "owner": "alice"}),
    },
    responses={201: example("Opened", _json(_OPENED))},
)
LIST: Final = with_examples(
    responses={
        200: example(
            "A page", _json(AccountPage([_NOW], "MDFhMjQ5OGUtMWVhOS03ZjI4LWJkNWYtZjk3MzYxNmFiODU3"))
        )
    }
)
READ: Final = with_examples(responses={200: example("An open account", _json(_NOW))})
DEPOSIT: Final = with_examples(
    request=example("A salary", {"amount": "25.00", "description": "salary"}),
    responses={201: example("Deposited", _json(_DEPOSITED))},
)
WITHDRAW: Final = with_examples(
    request=example("Cash", {"amount": "10.00"}),
    responses={201: example("Withdrawn", _json(_WITHDRAWN))},
)
_MOVEMENTS: Final = [_INITIAL, _DEPOSITED, _WITHDRAWN, _SENT]
STATEMENT: Final = with_examples(
    responses={
        200: {
            **example("The first page", _json(StatementOut(_MOVEMENTS[:2], "Mw"))),
            **example("The last page", _json(StatementOut(_MOVEMENTS[2:], None))),
        }
    }
)
BALANCE: Final = with_examples(
    responses={
        200: example("At an instant", _json(BalanceOut(_ALICE, _at(30, 0), "85.00", "EUR", 5)))
    }
)
TRANSFER: Final = with_examples(
    request=example(
        "Rent", {"source": _ALICE, "destination": _BOB, "amount": "30.00", "description": "rent"}
    ),
    responses={
        201: {
            **example("Completed", _json(_transfer("completed"))),
            **example("Failed, refunded", _json(_transfer("failed", "insufficient_funds"))),
        },
        202: example("Pending", _json(_transfer("pending"))),
    },
)
TRANSFER_READ: Final = with_examples(
    responses={200: example("Completed", _json(_transfer("completed")))}
)
_STREAM: Final = "".join(
    f"id: {movement.version}\nevent: movement\ndata: {msgspec.json.encode(movement).decode()}\n\n"
    for movement in _MOVEMENTS[1:3]
)
FEED: Final = with_examples(responses={200: example("Two movements", _STREAM)})
