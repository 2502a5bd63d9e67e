"""The Mongo read model on the real MongoDB-wire server: redelivery (also after a crash between
writes) changes nothing, balances equal the fold of the events, the indexes exist, a server that
cannot be reached is ``StoreUnavailableError``. The behaviour every read model shares is in
tests/contract/test_read_model.py, which runs on this backend too."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, InsertOne
from pymongo.errors import AutoReconnect

from core.errors import StoreUnavailableError
from handlers.accounts.readmodel import (
    AccountChanged,
    AccountOpenedView,
    MovementAdded,
    TransferRequestedView,
    TransferStatusChanged,
    ViewChange,
)
from handlers.accounts.views import AccountView, Movement, MovementKind, TransferView
from plugins.mongo import writes
from plugins.mongo.config import MongoConfig
from plugins.mongo.documents import AccountDoc, MovementDoc, TransferDoc
from plugins.mongo.readmodel import MongoReadModel
from tests.mongo.support import drop_database

pytestmark = pytest.mark.mongo

T0 = datetime(2026, 3, 1, 9, 0, 0, 123_457, tzinfo=UTC)  # microseconds on purpose
P = "accounts"


@dataclass
class Ledger:
    """A random history of events as the projection turns them into view changes (one list per
    event), and the fold of those events: what the read model must hold afterwards."""

    seed: int
    events: list[list[ViewChange]] = field(default_factory=list)
    balances: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    transfers: dict[str, str] = field(default_factory=dict)
    clock: datetime = T0

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1, microseconds=7)
        return self.clock

    def open(self, account_id: str) -> None:
        view = AccountView(account_id, f"owner-{account_id[-1]}", "EUR", 0, "open", 1, self.tick())
        self.balances[account_id], self.versions[account_id], self.lines[account_id] = 0, 1, 0
        self.events.append([AccountOpenedView(view)])

    def move(
        self, account_id: str, kind: MovementKind, amount: int, transfer: str | None = None
    ) -> list[ViewChange]:
        sign = -1 if kind in ("withdrawal", "transfer_out") else 1
        self.balances[account_id] += sign * amount
        self.versions[account_id] += 1
        self.lines[account_id] += 1
        version = self.versions[account_id]
        line = Movement(
            f"evt-{account_id}-{version}", account_id, kind, amount,
            self.balances[account_id], version, self.tick(), f"{kind} {amount}", transfer,
        )  # fmt: skip
        changes: list[ViewChange] = [
            MovementAdded(line),
            AccountChanged(account_id, version, balance=self.balances[account_id]),
        ]
        self.events.append(changes)
        return changes

    def transfer(self, transfer_id: str, source: str, destination: str, amount: int) -> None:
        view = TransferView(
            transfer_id, source, destination, amount, "EUR", "pending", 1, self.tick(), "alice"
        )
        self.events.append([TransferRequestedView(view)])
        if self.balances[source] < amount:
            self.events.append([TransferStatusChanged(transfer_id, 2, "failed", "no funds")])
            self.transfers[transfer_id] = "failed"
            return
        self.move(source, "transfer_out", amount, transfer_id)
        self.move(destination, "transfer_in", amount, transfer_id)
        self.events.append([TransferStatusChanged(transfer_id, 2, "completed")])
        self.transfers[transfer_id] = "completed"

    def close(self, account_id: str) -> None:
        self.versions[account_id] += 1
        version = self.versions[account_id]
        closed = AccountChanged(account_id, version, status="closed", closed_at=self.tick())
        self.events.append([closed])


def ledger(events: int, accounts: int = 20, seed: int = 7) -> Ledger:
    rng = random.Random(seed)
    book = Ledger(seed)
    ids = [f"acc-{n:03d}" for n in range(accounts)]
    for account_id in ids:
        book.open(account_id)
    transfers = 0
    while len(book.events) < events:
        account_id = rng.choice(ids)
        roll = rng.random()
        if roll < 0.5:
            book.move(account_id, "deposit", rng.randint(1, 50_000))
        elif roll < 0.8:
            amount = rng.randint(1, 50_000)
            if book.balances[account_id] >= amount:
                book.move(account_id, "withdrawal", amount)
        else:
            transfers += 1
            other = rng.choice([i for i in ids if i != account_id])
            book.transfer(f"tr-{transfers:05d}", account_id, other, rng.randint(1, 50_000))
    book.close(ids[0])
    return book


def batches(book: Ledger, size: int) -> list[list[ViewChange]]:
    """The changes of ``size`` events at a time, as the projector applies them."""
    return [
        [change for event in book.events[i : i + size] for change in event]
        for i in range(0, len(book.events), size)
    ]


async def apply_all(model: MongoReadModel, book: Ledger, size: int) -> None:
    for number, batch in enumerate(batches(book, size), start=1):
        await model.apply(P, batch, min(number * size, len(book.events)))


async def snapshot(model: MongoReadModel, book: Ledger) -> tuple[Any, ...]:
    accounts = await model.list_accounts(None, None, 10_000)
    lines = {a.id: await model.statement(a.id, None, None, 0, 100_000) for a in accounts}
    transfers = {t: await model.get_transfer(t) for t in sorted(book.transfers)}
    return accounts, lines, transfers, await model.checkpoint(P)


async def assert_folded(model: MongoReadModel, book: Ledger) -> None:
    """The read model holds the fold of the events: balance, version, every line, statuses."""
    accounts = await model.list_accounts(None, None, 10_000)
    assert {a.id: a.balance for a in accounts} == book.balances
    assert {a.id: a.version for a in accounts} == book.versions
    for account in accounts:
        lines = await model.statement(account.id, None, None, 0, 100_000)
        assert len(lines) == book.lines[account.id]
        assert [m.version for m in lines] == sorted(m.version for m in lines)
        if lines:
            assert lines[-1].balance_after == account.balance
    for transfer_id, status in book.transfers.items():
        stored = await model.get_transfer(transfer_id)
        assert stored is not None
        assert stored.status == status
    assert await model.pending_transfers() == []


async def test_redelivered_batches_change_nothing(mongo: MongoReadModel) -> None:
    book = ledger(600)
    await apply_all(mongo, book, 50)
    await assert_folded(mongo, book)
    once = await snapshot(mongo, book)

    # The same batches again, then other batch boundaries (a redelivery after a restart need
    # not cut the log where the first delivery did), then one event at a time.
    await apply_all(mongo, book, 50)
    await apply_all(mongo, book, 173)
    await apply_all(mongo, book, 1)

    assert await snapshot(mongo, book) == once
    assert once[0][0].closed_at is not None
    assert once[0][0].status == "closed"


async def test_a_crash_between_the_movement_and_the_account_update_is_repaired_by_redelivery(
    mongo: MongoReadModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = ledger(300)
    first, second, *rest = batches(book, 100)
    await mongo.apply(P, first, 100)

    # The second batch's movements are written, then the connection drops before the accounts.
    real_bulk = writes.bulk
    calls = 0

    async def crashing_bulk(collection: Any, requests: Sequence[Any], chunk: int) -> set[int]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise AutoReconnect("connection reset (simulated crash)")
        return await real_bulk(collection, requests, chunk)

    monkeypatch.setattr(writes, "bulk", crashing_bulk)
    with pytest.raises(StoreUnavailableError):
        await mongo.apply(P, second, 200)
    monkeypatch.undo()

    assert await mongo.checkpoint(P) == 100  # the checkpoint was not moved: it is redelivered
    moved = [c for c in second if isinstance(c, MovementAdded)]
    line = moved[-1].movement
    current = await mongo.get_account(line.account)
    assert current is not None
    # The line is there, and the account's balance is read from it: no half-applied state.
    assert (current.version, current.balance) == (line.version, line.balance_after)

    await mongo.apply(P, second, 200)  # the redelivery
    for number, batch in enumerate(rest, start=3):
        await mongo.apply(P, batch, number * 100)
    await assert_folded(mongo, book)
    assert await mongo.checkpoint(P) == (len(rest) + 2) * 100


async def test_a_stale_batch_after_newer_ones_changes_nothing(mongo: MongoReadModel) -> None:
    book = ledger(200)
    await apply_all(mongo, book, 40)
    once = await snapshot(mongo, book)
    for batch in reversed(batches(book, 40)):  # newest first: every guard refuses
        await mongo.apply(P, batch, 40)
    assert await snapshot(mongo, book) == once


async def test_stored_documents_match_the_beanie_models_and_keep_microseconds(
    mongo: MongoReadModel,
) -> None:
    book = ledger(120)
    await apply_all(mongo, book, 30)
    for document in (AccountDoc, MovementDoc, TransferDoc):
        raw = await mongo._collection(document).find().to_list()
        assert raw
        for doc in raw:
            document.model_validate(doc)
            assert type(doc["version"]).__name__ == "Int64"
    line = (await mongo.statement("acc-001", None, None, 0, 1))[0]
    assert line.occurred_at.microsecond % 1000 != 0 or line.occurred_at.microsecond == 0
    expected = [
        c.movement for e in book.events for c in e if isinstance(c, MovementAdded)
    ]  # fmt: skip
    assert line == next(m for m in expected if m.account == "acc-001")


async def test_the_indexes_exist(mongo: MongoReadModel) -> None:
    expected = {
        "accounts": {"_id_", "owner_id"},
        "movements": {"_id_", "account_occurred"},
        "transfers": {"_id_", "status_id"},
    }
    for document in (AccountDoc, MovementDoc, TransferDoc):
        collection = mongo._collection(document)
        names = {index["name"] async for index in await collection.list_indexes()}
        assert expected[collection.name] <= names, collection.name


async def test_start_twice_keeps_the_indexes(mongo_config: MongoConfig) -> None:
    """``init_beanie`` on existing indexes (every restart) works (FerretDB fix 3)."""
    for _ in range(2):
        model = MongoReadModel(mongo_config)
        await model.start()
        assert await model.ready()
        await model.close()
        assert not await model.ready()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_server_is_store_unavailable(mongo_config: MongoConfig) -> None:
    config = replace(mongo_config, url=f"mongodb://127.0.0.1:{closed_port()}/", timeout_ms=300)
    model = MongoReadModel(config)
    with pytest.raises(StoreUnavailableError, match="MongoDB read model"):
        await model.start()
    assert not await model.ready()
    with pytest.raises(StoreUnavailableError, match="not started"):
        await model.get_account("acc-1")


async def test_a_server_lost_after_start_is_store_unavailable(mongo: MongoReadModel) -> None:
    # Point the started model's database at a port nobody listens on.
    lost: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{closed_port()}/", serverSelectionTimeoutMS=300
    )
    real = mongo._db
    mongo._db = lost[mongo.config.database]
    try:
        with pytest.raises(StoreUnavailableError):
            await mongo.get_account("acc-1")
        with pytest.raises(StoreUnavailableError):
            await mongo.apply(P, ledger(5).events[0], 1)
        with pytest.raises(StoreUnavailableError):
            await mongo.statement("acc-1", None, None, 0, 10)
    finally:
        mongo._db = real
        await lost.close()


async def test_a_10k_event_projection_in_batches_of_500_is_the_fold(mongo: MongoReadModel) -> None:
    """Every event is applied and the read model equals the fold. The apply rate is a benchmark
    figure (bench/, measure 5), not a verdict of the suite."""
    book = ledger(10_000, accounts=100)
    await apply_all(mongo, book, 500)
    assert await mongo.checkpoint(P) == len(book.events)
    await assert_stored_fold(mongo, book)
    closed = await mongo.get_account("acc-000")  # the read path agrees with the documents
    assert closed is not None
    expected = (book.balances["acc-000"], book.versions["acc-000"], "closed")
    assert (closed.balance, closed.version, closed.status) == expected


async def assert_stored_fold(model: MongoReadModel, book: Ledger) -> None:
    """``assert_folded`` from the stored documents, one query per collection: on the test
    server an account's latest line or statement scans every movement, once per account."""
    lines: dict[str, list[dict[str, Any]]] = {account_id: [] for account_id in book.lines}
    for doc in await model._collection(MovementDoc).find().sort("_id", 1).to_list():
        lines[doc["account"]].append(doc)
    assert {a: len(docs) for a, docs in lines.items()} == book.lines
    for docs in lines.values():
        assert [d["version"] for d in docs] == sorted(d["version"] for d in docs)
    accounts = {d["_id"]: d for d in await model._collection(AccountDoc).find().to_list()}
    balances = {a: docs[-1]["balance_after"] if docs else 0 for a, docs in lines.items()}
    versions = {
        a: max([accounts[a]["version"], *(d["version"] for d in docs)]) for a, docs in lines.items()
    }
    assert (balances, versions) == (book.balances, book.versions)
    transfers = await model._collection(TransferDoc).find().to_list()
    assert {d["_id"]: d["status"] for d in transfers} == book.transfers


async def test_one_command_updates_more_documents_than_the_server_has_connections(
    mongo_config: MongoConfig,
) -> None:
    """A batch's 300 guarded updates in one command (no chunking), more than the test server's
    connection pool (100 on SQLite). A server that kept a connection per matched update until the
    command ended would wait forever here; the wait is bounded, so that this fails instead."""
    model = MongoReadModel(replace(mongo_config, bulk_chunk=10_000))
    await model.start()
    try:
        book = Ledger(seed=0)
        ids = [f"acc-{n:03d}" for n in range(300)]
        for account_id in ids:
            book.open(account_id)
        for account_id in ids:
            book.close(account_id)
        opened, closed = batches(book, len(ids))
        await model.apply(P, opened, len(ids))
        await asyncio.wait_for(model.apply(P, closed, 2 * len(ids)), timeout=60)
        docs = await model._collection(AccountDoc).find().to_list()
        assert sorted((d["_id"], d["status"], d["version"]) for d in docs) == [
            (account_id, "closed", 2) for account_id in ids
        ]
    finally:
        await model.close()
        await drop_database(mongo_config.url, mongo_config.database)


async def test_a_deposit_writes_its_line_and_leaves_the_account_document_alone(
    mongo: MongoReadModel,
) -> None:
    book = ledger(120)
    await apply_all(mongo, book, 40)
    await assert_folded(mongo, book)
    accounts = mongo._collection(AccountDoc)
    lines = [c.movement for event in book.events for c in event if isinstance(c, MovementAdded)]
    touched = {line.account for line in lines}
    for account_id in touched:
        doc = await accounts.find_one({"_id": account_id})
        assert doc is not None
        latest = max(line.version for line in lines if line.account == account_id)
        if doc["status"] == "open":
            assert doc["version"] < latest  # only the opening wrote it; the lines carry the rest


async def test_bulk_sends_its_chunks_together_and_names_the_ids_found_taken_in_each(
    mongo: MongoReadModel,
) -> None:
    collection = mongo._collection(MovementDoc)
    taken = [3, 14, 22]  # in the first, second and third chunk of ten
    await collection.insert_many([{"_id": f"line-{i}", "n": -1} for i in taken])
    requests = [InsertOne({"_id": f"line-{i}", "n": i}) for i in range(25)]

    assert await writes.bulk(collection, requests, 10) == set(taken)
    stored = {doc["_id"]: doc["n"] for doc in await collection.find().to_list()}
    assert stored == {f"line-{i}": -1 if i in taken else i for i in range(25)}
