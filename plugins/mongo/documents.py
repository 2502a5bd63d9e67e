"""The read model's MongoDB documents (Beanie), and their conversion to and from the views.

Every hot path is a lookup or a range on ``_id``, the one index FerretDB's SQLite backend uses
for queries: an account's ``_id`` is its id, a movement's is ``"<account>:<version:012d>"`` (so an
account's statement is one ``_id`` range, in version order), a transfer's is its id, a
checkpoint's is the projection's name. The secondary indexes below are for a real MongoDB, which
uses them for queries (FerretDB only enforces their uniqueness).

Amounts and versions are BSON int64 (minor units). Each timestamp is stored twice: as a BSON
date (UTC, what a person or a tool reads and what a TTL or date index would use), and as whole
microseconds since the epoch (``*_us``), because a BSON date keeps only milliseconds and the
events, the write model and the SQLite read model keep microseconds. Reads and time filters use
the microseconds, so a statement returns the exact ``occurred_at`` of each event.

The hot path writes these shapes with pymongo bulk writes built by the functions below (no
pydantic round trip per event); ``init_beanie`` declares the collections and creates the indexes,
and the models validate what is stored (see the tests).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final

from beanie import Document
from bson import Int64
from pydantic import Field
from pymongo import ASCENDING, IndexModel

from handlers.accounts.views import AccountView, Movement, TransferView

__all__ = [
    "DOCUMENTS",
    "AccountDoc",
    "CheckpointDoc",
    "MovementDoc",
    "TransferDoc",
    "account_document",
    "account_view",
    "from_micros",
    "movement_document",
    "movement_id",
    "movement_range",
    "movement_view",
    "to_micros",
    "transfer_document",
    "transfer_view",
]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_VERSION_DIGITS: Final = 12


def to_micros(moment: datetime) -> int:
    """Whole microseconds since the epoch (exact: no float on the way)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: the read model stores UTC instants")
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(micros))


def movement_id(account_id: str, version: int) -> str:
    """The movement's ``_id``: ordered by version within an account, as strings compare."""
    return f"{account_id}:{version:0{_VERSION_DIGITS}d}"


def movement_range(account_id: str, after_version: int) -> dict[str, str]:
    """The ``_id`` range of an account's movements after ``after_version`` (``;`` follows ``:``)."""
    return {"$gt": movement_id(account_id, max(after_version, 0)), "$lt": f"{account_id};"}


class AccountDoc(Document):
    id: str = Field(alias="_id")  # type: ignore[assignment]
    owner: str
    currency: str
    balance: int
    status: str
    version: int
    opened_at: datetime
    opened_us: int
    closed_at: datetime | None = None
    closed_us: int | None = None

    class Settings:
        name = "accounts"
        indexes: ClassVar[list[IndexModel]] = [
            # list_accounts(owner, after): equality on owner, then the page by _id.
            IndexModel([("owner", ASCENDING), ("_id", ASCENDING)], name="owner_id"),
        ]


class MovementDoc(Document):
    id: str = Field(alias="_id")  # type: ignore[assignment]
    event_id: str
    account: str
    kind: str
    amount: int
    balance_after: int
    version: int
    occurred_at: datetime
    occurred_us: int
    description: str | None = None
    transfer_id: str | None = None
    counterparty: str | None = None

    class Settings:
        name = "movements"
        indexes: ClassVar[list[IndexModel]] = [
            # The (account, version) key is already unique through _id; this one is for the
            # statement's time filter on a real MongoDB.
            IndexModel(
                [("account", ASCENDING), ("occurred_us", ASCENDING)], name="account_occurred"
            ),
        ]


class TransferDoc(Document):
    id: str = Field(alias="_id")  # type: ignore[assignment]
    source: str
    destination: str
    amount: int
    currency: str
    status: str
    version: int
    requested_at: datetime
    requested_us: int
    owner: str = ""
    description: str | None = None
    reason: str | None = None

    class Settings:
        name = "transfers"
        indexes: ClassVar[list[IndexModel]] = [
            # pending_transfers(): the transfers still pending, by id.
            IndexModel([("status", ASCENDING), ("_id", ASCENDING)], name="status_id"),
        ]


class CheckpointDoc(Document):
    id: str = Field(alias="_id")  # type: ignore[assignment]
    position: int

    class Settings:
        name = "checkpoints"


DOCUMENTS: Final[list[type[Document]]] = [AccountDoc, MovementDoc, TransferDoc, CheckpointDoc]


def account_document(account: AccountView) -> dict[str, Any]:
    """The account's fields without ``_id`` (the filter gives it), for ``$setOnInsert``."""
    closed = account.closed_at
    return {
        "owner": account.owner,
        "currency": account.currency,
        "balance": Int64(account.balance),
        "status": account.status,
        "version": Int64(account.version),
        "opened_at": account.opened_at,
        "opened_us": Int64(to_micros(account.opened_at)),
        "closed_at": closed,
        "closed_us": None if closed is None else Int64(to_micros(closed)),
    }


def account_view(doc: dict[str, Any], latest_line: dict[str, Any] | None = None) -> AccountView:
    """The account document overlaid with its latest movement line, which carries the current
    balance (every balance change has its line) and, unless the account changed since (closed),
    the current version."""
    closed_us = doc.get("closed_us")
    balance, version = int(doc["balance"]), int(doc["version"])
    if latest_line is not None:
        balance = int(latest_line["balance_after"])
        version = max(version, int(latest_line["version"]))
    return AccountView(
        id=doc["_id"],
        owner=doc["owner"],
        currency=doc["currency"],
        balance=balance,
        status=doc["status"],
        version=version,
        opened_at=from_micros(doc["opened_us"]),
        closed_at=None if closed_us is None else from_micros(closed_us),
    )


def movement_document(movement: Movement) -> dict[str, Any]:
    return {
        "_id": movement_id(movement.account, movement.version),
        "event_id": movement.id,
        "account": movement.account,
        "kind": movement.kind,
        "amount": Int64(movement.amount),
        "balance_after": Int64(movement.balance_after),
        "version": Int64(movement.version),
        "occurred_at": movement.occurred_at,
        "occurred_us": Int64(to_micros(movement.occurred_at)),
        "description": movement.description,
        "transfer_id": movement.transfer_id,
        "counterparty": movement.counterparty,
    }


def movement_view(doc: dict[str, Any]) -> Movement:
    return Movement(
        id=doc["event_id"],
        account=doc["account"],
        kind=doc["kind"],
        amount=int(doc["amount"]),
        balance_after=int(doc["balance_after"]),
        version=int(doc["version"]),
        occurred_at=from_micros(doc["occurred_us"]),
        description=doc.get("description"),
        transfer_id=doc.get("transfer_id"),
        counterparty=doc.get("counterparty"),
    )


def transfer_document(transfer: TransferView) -> dict[str, Any]:
    """The transfer's fields without ``_id`` (the filter gives it), for ``$setOnInsert``."""
    return {
        "source": transfer.source,
        "destination": transfer.destination,
        "amount": Int64(transfer.amount),
        "currency": transfer.currency,
        "status": transfer.status,
        "version": Int64(transfer.version),
        "requested_at": transfer.requested_at,
        "requested_us": Int64(to_micros(transfer.requested_at)),
        "owner": transfer.owner,
        "description": transfer.description,
        "reason": transfer.reason,
    }


def transfer_view(doc: dict[str, Any]) -> TransferView:
    return TransferView(
        id=doc["_id"],
        source=doc["source"],
        destination=doc["destination"],
        amount=int(doc["amount"]),
        currency=doc["currency"],
        status=doc["status"],
        version=int(doc["version"]),
        requested_at=from_micros(doc["requested_us"]),
        owner=doc.get("owner", ""),
        description=doc.get("description"),
        reason=doc.get("reason"),
    )
