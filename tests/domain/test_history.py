"""Snapshots, upcasting of old event schemas, and the balance at a past instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from core.ports import EventStore
from core.records import EventMetadata, EventRecord
from handlers.accounts.account import account_stream
from handlers.accounts.clock import Clock
from handlers.accounts.messages import Deposit, GetBalanceAt, GetStatement, OpenAccount, Withdraw
from handlers.accounts.repositories import Accounts
from plugins.memory.store import MemoryEventStore
from tests.support import ALICE, FakeClock, ctx, running, settings_for


class CountingStore(MemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.read_events = 0

    async def read(
        self, stream_id: str, after_version: int = 0, until: datetime | None = None
    ) -> list[EventRecord]:
        records = await super().read(stream_id, after_version, until)
        self.read_events += len(records)
        return records


async def test_snapshots_bound_the_replay(tmp_path: Path) -> None:
    store = CountingStore()
    settings = settings_for("memory", tmp_path, snapshot_every="50")
    async with running(settings, overrides={EventStore: store}) as app:
        account = await app.mediator.send(OpenAccount("EUR", ctx()))
        for _ in range(120):
            await app.mediator.send(Deposit(account.id, "1.00", ctx()))
    snapshot = await store.load_snapshot(account_stream(account.id))
    assert snapshot is not None
    assert snapshot.version == 100

    async with running(settings, overrides={EventStore: store}, run_projector=False) as app:
        store.read_events = 0
        state = await app.container.resolve(Accounts).load(account_stream(account.id))
    assert (state.version, state.balance) == (121, 12000)
    assert store.read_events == 21  # only the events after the snapshot


async def test_an_old_event_schema_is_upcast_when_read(tmp_path: Path) -> None:
    async with running(settings_for("memory", tmp_path)) as app:
        account = await app.mediator.send(OpenAccount("EUR", ctx()))
        store = app.container.resolve(EventStore)
        stream = account_stream(account.id)
        old = EventRecord(
            stream_id=stream,
            version=2,
            type="MoneyDeposited",
            schema=1,
            event_id="old-1",
            occurred_at=datetime.now(UTC),
            data=msgspec.Raw(b'{"amount":700,"balance_after":700,"note":"from the old days"}'),
            metadata=EventMetadata(actor="alice"),
        )
        await store.append(stream, 1, [old])
        statement = await app.mediator.send(GetStatement(account.id, ALICE, min_version=2))
        assert statement.items[0].description == "from the old days"
        receipt = await app.mediator.send(Deposit(account.id, "1.00", ctx()))
        assert receipt.movement.balance_after == 800


async def test_balance_at_any_past_instant(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running(settings_for("memory", tmp_path), overrides={Clock: clock}) as app:
        send = app.mediator.send
        start = clock.now()
        account = await send(OpenAccount("EUR", ctx()))
        clock.advance(hours=1)
        await send(Deposit(account.id, "500.00", ctx()))
        clock.advance(hours=1)
        await send(Withdraw(account.id, "120.50", ctx()))

        async def at(moment: datetime) -> tuple[int, int]:
            answer = await send(GetBalanceAt(account.id, ALICE, moment))
            return answer.balance, answer.version

        assert await at(start - timedelta(seconds=1)) == (0, 0)
        assert await at(start + timedelta(minutes=30)) == (0, 1)
        assert await at(start + timedelta(hours=1)) == (50000, 2)
        assert await at(start + timedelta(hours=1, minutes=59)) == (50000, 2)
        assert await at(start + timedelta(days=1)) == (37950, 3)


@pytest.mark.parametrize("naive", [datetime(2026, 1, 1)])  # noqa: DTZ001
async def test_balance_at_needs_a_time_zone(tmp_path: Path, naive: datetime) -> None:
    async with running(settings_for("memory", tmp_path)) as app:
        account = await app.mediator.send(OpenAccount("EUR", ctx()))
        with pytest.raises(Exception, match="time zone"):
            await app.mediator.send(GetBalanceAt(account.id, ALICE, naive))
