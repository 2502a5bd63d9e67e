"""Close and reopen the SQLite backend: every acknowledged event is still there, and the
projection resumes from its checkpoint without applying anything twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.ports import EventStore
from handlers.accounts.messages import Deposit, GetAccount, GetStatement, OpenAccount
from handlers.accounts.projection import PROJECTION
from handlers.accounts.readmodel import AccountReadModel
from tests.support import ALICE, ctx, running, settings_for


async def test_restart_keeps_events_and_resumes_the_projection(tmp_path: Path) -> None:
    settings = settings_for("sqlite", tmp_path)
    async with running(settings) as app:
        account = await app.mediator.send(OpenAccount("EUR", ctx()))
        receipts = await asyncio.gather(
            *(app.mediator.send(Deposit(account.id, "2.00", ctx())) for _ in range(30))
        )
        acknowledged = {r.movement.id for r in receipts}
        checkpoint_before = await app.container.resolve(AccountReadModel).checkpoint(PROJECTION)

    # Events appended while no projector runs: the next start must catch up on exactly these.
    async with running(settings, run_projector=False) as app:
        for _ in range(5):
            await app.mediator.send(Deposit(account.id, "1.00", ctx()))

    async with running(settings) as app:
        records = await app.container.resolve(EventStore).read(f"account-{account.id}")
        assert [r.version for r in records] == list(range(1, 37))
        assert acknowledged <= {r.event_id for r in records}
        read_model = app.container.resolve(AccountReadModel)
        assert await read_model.checkpoint(PROJECTION) > checkpoint_before
        view = await app.mediator.send(GetAccount(account.id, ALICE, min_version=36))
        assert (view.balance, view.version) == (6500, 36)
        statement = await app.mediator.send(GetStatement(account.id, ALICE, limit=200))
        assert len(statement.items) == 35
        assert len({m.version for m in statement.items}) == 35
