"""The JSON bodies of the REST API, as msgspec Structs, their conversions from the views, and
what the OpenAPI document says of them beyond Litestar's own schemas (``OPENAPI_PLUGINS``).

Amounts are decimal strings in the account's currency (``"500.00"``); a JSON number is refused
by its type. The domain parses the text (``handlers.accounts.money.parse_amount``) and refuses
any other shape, zero, negatives, too many decimals and amounts over the maximum, naming the
field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from handlers.accounts.money import format_amount
from handlers.accounts.views import AccountView, BalanceAt, Movement, MovementKind, TransferView

__all__ = [
    "AMOUNT_PATTERN",
    "OPENAPI_PLUGINS",
    "AccountOut",
    "AccountPage",
    "BalanceOut",
    "MovementIn",
    "MovementOut",
    "OpenAccountIn",
    "StatementOut",
    "TransferIn",
    "TransferOut",
    "account_out",
    "balance_out",
    "movement_out",
    "transfer_out",
]

# The form of every amount the API reads or writes. In a request the domain checks it
# (``parse_amount``: 422 invalid-amount), with its rules on top: more than zero, the currency's
# decimals, the maximum.
AMOUNT_PATTERN: Final = r"^-?[0-9]+(\.[0-9]+)?$"
_AMOUNT_META: Final = msgspec.Meta(
    description='A decimal string in the account\'s currency, e.g. "500.00"; not a JSON number',
    examples=["500.00"],
)
Amount = Annotated[str, _AMOUNT_META]
AmountText = Annotated[str, msgspec.Meta(pattern=AMOUNT_PATTERN, examples=["500.00"])]
Text = Annotated[str, msgspec.Meta(max_length=500)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


# ---- requests ----


class OpenAccountIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    currency: Annotated[
        str, msgspec.Meta(pattern="^[A-Z]{3}$", description="An ISO 4217 code", examples=["EUR"])
    ]
    initial_deposit: Amount | None = None
    # Only a teller may name the owner; anyone else opens an account of their own.
    owner: Id | None = None


class MovementIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount: Amount
    description: Text | None = None


class TransferIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    source: Id
    destination: Id
    amount: Amount
    description: Text | None = None


# ---- responses ----


class AccountOut(msgspec.Struct, frozen=True):
    id: str
    owner: str
    currency: str
    balance: AmountText
    status: Literal["open", "closed"]
    version: int
    opened_at: datetime
    closed_at: datetime | None


class AccountPage(msgspec.Struct, frozen=True):
    items: list[AccountOut]
    next_cursor: str | None


class MovementOut(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    account: str
    kind: MovementKind
    amount: AmountText
    balance_after: AmountText
    version: int
    occurred_at: datetime
    description: str | None = None
    transfer_id: str | None = None
    counterparty: str | None = None


class StatementOut(msgspec.Struct, frozen=True):
    items: list[MovementOut]
    next_cursor: str | None


class TransferOut(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    source: str
    destination: str
    amount: AmountText
    currency: str
    status: Literal["pending", "completed", "failed"]
    requested_at: datetime
    description: str | None = None
    reason: str | None = None


class BalanceOut(msgspec.Struct, frozen=True):
    account: str
    at: datetime
    balance: AmountText
    currency: str
    version: int


def account_out(view: AccountView) -> AccountOut:
    return AccountOut(
        id=view.id,
        owner=view.owner,
        currency=view.currency,
        balance=format_amount(view.balance, view.currency),
        status=view.status,
        version=view.version,
        opened_at=view.opened_at,
        closed_at=view.closed_at,
    )


def movement_out(movement: Movement, currency: str) -> MovementOut:
    return MovementOut(
        id=movement.id,
        account=movement.account,
        kind=movement.kind,
        amount=format_amount(movement.amount, currency),
        balance_after=format_amount(movement.balance_after, currency),
        version=movement.version,
        occurred_at=movement.occurred_at,
        description=movement.description,
        transfer_id=movement.transfer_id,
        counterparty=movement.counterparty,
    )


def transfer_out(view: TransferView) -> TransferOut:
    return TransferOut(
        id=view.id,
        source=view.source,
        destination=view.destination,
        amount=format_amount(view.amount, view.currency),
        currency=view.currency,
        status=view.status,
        requested_at=view.requested_at,
        description=view.description,
        reason=view.reason,
    )


def balance_out(view: BalanceAt) -> BalanceOut:
    return BalanceOut(
        account=view.account,
        at=view.at,
        balance=format_amount(view.balance, view.currency),
        currency=view.currency,
        version=view.version,
    )


# ---- the OpenAPI document ----


class _AmountSchema(OpenAPISchemaPlugin):
    """A request amount: a string of ``AMOUNT_PATTERN``'s form. The pattern is documented, not
    enforced by msgspec, so that a malformed amount is the domain's 422 invalid-amount."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return _AMOUNT_META in field_definition.metadata

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        return Schema(
            type=OpenAPIType.STRING,
            pattern=AMOUNT_PATTERN,
            description=_AMOUNT_META.description,
            examples=_AMOUNT_META.examples,
        )


# For ``balance_openapi``: the app puts them ahead of Litestar's own schema plugins.
OPENAPI_PLUGINS: Final = (_AmountSchema(),)
