"""The writes of one projection batch into MongoDB (or a MongoDB-wire server), without
transactions.

``MongoReadModel.apply`` cannot write a batch and its checkpoint atomically, so every write is
idempotent and guarded on its own, and the order of the writes makes any prefix of them safe:

1. movements: inserted with ``_id = "<account>:<version>"``; a duplicate key (11000) is success;
2. accounts: inserted with ``$setOnInsert`` (upsert on ``_id``), then changed only where the
   stored version is lower (``{_id, version: {$lt: v}}``);
3. transfers: the same, by transfer id;
4. the checkpoint, with ``$max`` (it never moves back).

A crash anywhere in between leaves the checkpoint at the previous batch; the projection applies
that batch again and every write already done matches nothing. See docs/mongo.md.

Consecutive changes of one account (versions v, v+1, ...) within a batch are merged into one
guarded update, which gives the same result as applying them one by one (proof in docs/mongo.md);
changes of different documents go out together in unordered bulk writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bson import Int64
from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from handlers.accounts.readmodel import (
    AccountChanged,
    AccountOpenedView,
    MovementAdded,
    TransferRequestedView,
    TransferStatusChanged,
    ViewChange,
)
from plugins.mongo.documents import (
    account_document,
    movement_document,
    to_micros,
    transfer_document,
)

__all__ = ["DUPLICATE_KEY", "Doc", "WritePlan", "bulk", "plan_writes", "write"]

DUPLICATE_KEY: Final = 11000
Doc = dict[str, Any]


@dataclass(slots=True)
class _Insert:
    """Insert the document if its ``_id`` is absent. ``then`` is the guarded change folded into
    ``fields``: when the insert finds the document there, that change is applied instead."""

    fields: Doc
    then: _Change | None = None


@dataclass(slots=True)
class _Change:
    """Set ``fields`` and ``version`` where the stored version is lower than ``version``."""

    version: int
    fields: Doc = field(default_factory=dict)


_Op = _Insert | _Change


def _carried_by_movement(change: AccountChanged, lines: set[tuple[str, int]]) -> bool:
    """A balance-only change whose movement line is in the same batch: reads take the balance
    and version from that line, so the account document needs no write."""
    only_balance = change.status is None and change.closed_at is None
    return only_balance and (change.account_id, change.version) in lines


def _account_fields(change: AccountChanged) -> Doc:
    fields: Doc = {}
    if change.balance is not None:
        fields["balance"] = Int64(change.balance)
    if change.status is not None:
        fields["status"] = change.status
    if change.closed_at is not None:
        fields["closed_at"] = change.closed_at
        fields["closed_us"] = Int64(to_micros(change.closed_at))
    return fields


def _add_change(ops: dict[str, list[_Op]], key: str, version: int, fields: Doc) -> None:
    """Append a guarded change, merged into the previous one when that one is for the version
    just before: applying v then v+1 equals applying their merge at v+1 (docs/mongo.md)."""
    pending = ops.setdefault(key, [])
    last = pending[-1] if pending else None
    if isinstance(last, _Change) and last.version == version - 1:
        last.version = version
        last.fields.update(fields)
    else:
        pending.append(_Change(version, dict(fields)))


def _fold_inserts(ops: dict[str, list[_Op]]) -> None:
    """An insert followed by a newer change becomes one insert of the changed document, which
    is what the two give when the document is absent; when it is there, the insert fails with a
    duplicate key and the change is applied on its own, as it would have been."""
    for pending in ops.values():
        if len(pending) < 2:
            continue
        first, second = pending[0], pending[1]
        if (
            isinstance(first, _Insert)
            and first.then is None
            and isinstance(second, _Change)
            and second.version > int(first.fields["version"])
        ):
            first.fields = {**first.fields, **second.fields, "version": Int64(second.version)}
            first.then = second
            del pending[1]


def _inserts(ops: dict[str, list[_Op]]) -> tuple[list[str], list[InsertOne[Doc]]]:
    """The first op of each document when it is an insert (removed from ``ops``)."""
    keys: list[str] = []
    requests: list[InsertOne[Doc]] = []
    for key, pending in ops.items():
        if pending and isinstance(pending[0], _Insert):
            keys.append(key)
            requests.append(InsertOne({"_id": key, **pending[0].fields}))
    return keys, requests


def _waves(ops: dict[str, list[_Op]]) -> Iterator[list[UpdateOne]]:
    """The remaining writes in rounds: round i holds the i-th write of every document, so one
    document's writes keep their order while different documents' go out together."""
    depth = max((len(pending) for pending in ops.values()), default=0)
    for i in range(depth):
        yield [_request(key, pending[i]) for key, pending in ops.items() if i < len(pending)]


def _request(key: str, op: _Op) -> UpdateOne:
    if isinstance(op, _Insert):
        # An insert after other writes of the same document in one batch (not what the
        # projection emits, but the port allows it): insert-if-absent by upsert.
        return UpdateOne({"_id": key}, {"$setOnInsert": op.fields}, upsert=True)
    version = Int64(op.version)
    return UpdateOne(
        {"_id": key, "version": {"$lt": version}}, {"$set": {**op.fields, "version": version}}
    )


@dataclass(slots=True)
class WritePlan:
    """One batch's writes: the movement lines to insert, and each account's and transfer's
    inserts and guarded changes, in order."""

    movements: list[InsertOne[Doc]] = field(default_factory=list)
    accounts: dict[str, list[_Op]] = field(default_factory=dict)
    transfers: dict[str, list[_Op]] = field(default_factory=dict)


def plan_writes(changes: Sequence[ViewChange]) -> WritePlan:
    plan = WritePlan()
    accounts, transfers = plan.accounts, plan.transfers
    lines = {
        (c.movement.account, c.movement.version) for c in changes if isinstance(c, MovementAdded)
    }
    for change in changes:
        match change:
            case MovementAdded(movement=m):
                plan.movements.append(InsertOne(movement_document(m)))
            case AccountOpenedView(account=a):
                accounts.setdefault(a.id, []).append(_Insert(account_document(a)))
            case AccountChanged():
                if _carried_by_movement(change, lines):
                    continue
                fields = _account_fields(change)
                _add_change(accounts, change.account_id, change.version, fields)
            case TransferRequestedView(transfer=t):
                transfers.setdefault(t.id, []).append(_Insert(transfer_document(t)))
            case TransferStatusChanged():
                fields = {"status": change.status, "reason": change.reason}
                _add_change(transfers, change.transfer_id, change.version, fields)
    return plan


async def write(
    collection: AsyncCollection[Doc],
    ops: dict[str, list[_Op]],
    chunk: int,
) -> None:
    """Inserts (each with its folded change), then the guarded changes wave by wave."""
    _fold_inserts(ops)
    keys, inserts = _inserts(ops)
    present = await bulk(collection, inserts, chunk)
    for index, key in enumerate(keys):
        insert = ops[key].pop(0)
        assert isinstance(insert, _Insert)
        if index in present and insert.then is not None:
            ops[key].insert(0, insert.then)  # it was there: apply the change on its own
    for wave in _waves(ops):
        await bulk(collection, wave, chunk)


async def bulk(collection: AsyncCollection[Doc], requests: Sequence[Any], chunk: int) -> set[int]:
    """Unordered bulk writes of ``chunk`` requests, all sent at once: the server works on one
    while the next is encoded and sent (none depends on another: each document is in one of
    them). Returns the indexes (into ``requests``) that found their ``_id`` taken, which means
    they were applied before."""
    starts = range(0, len(requests), chunk)
    sent = (_bulk_chunk(collection, requests[start : start + chunk], start) for start in starts)
    outcomes = await asyncio.gather(*sent, return_exceptions=True)
    duplicates: set[int] = set()
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        duplicates |= outcome
    return duplicates


async def _bulk_chunk(
    collection: AsyncCollection[Doc], requests: Sequence[Any], start: int
) -> set[int]:
    try:
        await collection.bulk_write(requests, ordered=False)
    except BulkWriteError as error:
        errors = error.details.get("writeErrors", [])
        if error.details.get("writeConcernErrors") or any(
            e.get("code") != DUPLICATE_KEY for e in errors
        ):
            raise
        return {start + int(e["index"]) for e in errors}
    return set()
