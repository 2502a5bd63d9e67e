"""Blue/green projection rebuilds on the real read models: SQLite, and Mongo on the project's
MongoDB-wire server. The rebuild fills a new generation beside the live one, switches, and drops
the old one; queries and a live projector carry on throughout."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from pymongo import AsyncMongoClient

from api.bootstrap import Application
from core.config import Settings, reading_only
from core.hookspecs import hookimpl
from core.registry import Registry
from handlers.accounts.errors import InsufficientFundsError
from handlers.accounts.generations import Generations
from handlers.accounts.messages import CloseAccount, Deposit, OpenAccount, Transfer, Withdraw
from handlers.accounts.notifications import EventsProjected
from handlers.accounts.projection import PROJECTION, project_all
from handlers.accounts.readmodel import AccountOpenedView, AccountReadModel, ProjectionBusyError
from handlers.accounts.views import AccountView
from plugins.memory.readmodel import MemoryReadModel
from tests.support import ctx, running, settings_for

ROOT = Path(__file__).resolve().parents[2]
GHOST = AccountView("ghost", "nobody", "EUR", 999, "open", 1, datetime(2020, 1, 1, tzinfo=UTC))


def read_model_of(app: Application) -> Any:
    read_model = app.backends["read_model"]
    assert isinstance(read_model, Generations)
    return read_model


async def fold_of_all_events(app: Application) -> MemoryReadModel:
    """What the read model must hold: every event in the store, projected."""
    store = app.backends["event_store"]
    total = await store.event_count()
    folded = MemoryReadModel()
    subscription = store.subscribe(f"fold-{uuid4().hex}", 0)
    seen = 0
    try:
        for _ in range(300):  # a Kafka consumer takes a few seconds to get its partitions
            if seen >= total:
                break
            batch = await subscription.next_batch(0.2)
            if batch is not None and batch.events:
                await folded.apply(PROJECTION, project_all(batch.events), batch.checkpoint)
                seen += len(batch.events)
    finally:
        await subscription.close()
    assert seen == total
    return folded


async def assert_equal_to_the_fold(
    app: Application,
    ids: list[str],
    transfers: Sequence[str] = (),
) -> None:
    read_model: AccountReadModel = app.backends["read_model"]
    folded = await fold_of_all_events(app)
    for account_id in ids:
        assert await read_model.get_account(account_id) == await folded.get_account(account_id)
        got = await read_model.statement(account_id, None, None, 0, 10_000)
        assert got == await folded.statement(account_id, None, None, 0, 10_000)
    for transfer_id in transfers:
        assert await read_model.get_transfer(transfer_id) == await folded.get_transfer(transfer_id)
    assert await read_model.list_accounts(None, None, 100) == await folded.list_accounts(
        None, None, 100
    )
    assert await read_model.pending_transfers() == await folded.pending_transfers()
    assert await read_model.get_account("ghost") is None


async def test_a_rebuild_of_every_kind_of_event_equals_the_fold(settings: Settings) -> None:
    async with running(settings) as app:
        a = (await app.mediator.send(OpenAccount("EUR", ctx(), "100.00"))).id
        b = (await app.mediator.send(OpenAccount("EUR", ctx(), "5.00"))).id
        c = (await app.mediator.send(OpenAccount("EUR", ctx()))).id
        await app.mediator.send(Withdraw(a, "1.50", ctx(), description="cash"))
        done = await app.mediator.send(Transfer(a, b, "10.00", ctx(), description="rent"))
        with pytest.raises(InsufficientFundsError):
            await app.mediator.send(Transfer(c, a, "1.00", ctx()))
        await app.mediator.send(Transfer(b, c, "15.00", ctx()))
        await app.mediator.send(Withdraw(c, "15.00", ctx()))
        await app.mediator.send(CloseAccount(c, ctx()))
        await app.projector.catch_up()
        assert await app.projector.rebuild() > 10
        assert await read_model_of(app).live_generation() == 1
        closed = await app.backends["read_model"].get_account(c)
        assert (closed.status, closed.balance) == ("closed", 0)
        await assert_equal_to_the_fold(app, [a, b, c], [done.id])


async def project_until_seen(app: Application, account_id: str) -> None:
    """Catch up until the account is in the read model (a Kafka consumer takes a moment to get
    its partitions, and ``catch_up`` stops at the first quiet 50 ms)."""
    for _ in range(200):
        await app.projector.catch_up()
        if await app.backends["read_model"].get_account(account_id) is not None:
            return
    raise AssertionError(f"{account_id} never reached the read model")


def hook_the_next_build(
    read_model: Any,
    monkeypatch: pytest.MonkeyPatch,
    during: Callable[[str], Awaitable[None]],
) -> None:
    """Run ``during(moment)`` before and after each batch the next rebuild writes, and just
    before and just after its switch: a deterministic interleaving with the rebuild."""
    new_generation = read_model.new_generation

    async def hooked() -> Any:
        build = await new_generation()
        apply, switch = build.apply, build.switch

        async def apply_and_look(*args: Any) -> None:
            await during("building")
            await apply(*args)
            await during("building")

        async def switch_and_look() -> int:
            await during("before switch")
            replaced: int = await switch()
            await during("after switch")
            return replaced

        build.apply, build.switch = apply_and_look, switch_and_look
        return build

    monkeypatch.setattr(read_model, "new_generation", hooked)


async def test_readers_get_the_old_answers_until_the_switch_and_the_new_ones_after(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        running(settings, run_projector=False) as app,
        running(settings, run_projector=False) as other_process,
    ):
        account = await app.mediator.send(OpenAccount("EUR", ctx(), "10.00"))
        await app.mediator.send(Deposit(account.id, "5.00", ctx()))
        await app.projector.catch_up()
        await project_until_seen(app, account.id)
        # The live generation holds an account no event implies: only the rebuild removes it.
        live = read_model_of(app)
        await live.apply(PROJECTION, [AccountOpenedView(GHOST)], 0)
        readers = [live, read_model_of(other_process)]
        answers: list[tuple[str, bool]] = []

        async def look(moment: str) -> None:
            for reader in readers:
                real = await reader.get_account(account.id)
                assert real is not None  # never a read of nothing
                assert real.balance == 1500
                answers.append((moment, await reader.get_account("ghost") is not None))

        free: list[bool] = []
        stop = asyncio.Event()

        async def read_freely() -> None:
            while not stop.is_set():
                real = await readers[1].get_account(account.id)
                assert real is not None
                assert real.balance == 1500
                free.append(await readers[1].get_account("ghost") is not None)
                await asyncio.sleep(0)

        hook_the_next_build(live, monkeypatch, look)
        reading = asyncio.create_task(read_freely())
        assert await live.live_generation() == 0
        assert await app.projector.rebuild() == 3
        stop.set()
        await reading

        assert await live.live_generation() == 1
        assert await read_model_of(other_process).live_generation() == 1
        assert answers == [
            *[("building", True)] * 4,  # one batch, two readers, before and after it
            *[("before switch", True)] * 2,
            *[("after switch", False)] * 2,
        ]
        # The free reader's answers: the old model's, then the new one's, never back.
        switched = free.index(False) if False in free else len(free)
        assert free == [True] * switched + [False] * (len(free) - switched)
        assert await readers[1].get_account("ghost") is None
        await assert_equal_to_the_fold(app, [account.id])


async def test_a_rebuild_beside_a_live_server_loses_no_event_at_the_seam(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(settings) as server:  # projects in the background, as `serve` does
        assert server.run_projector
        ids = [(await server.mediator.send(OpenAccount("EUR", ctx(), "1.00"))).id for _ in range(3)]
        deposits = 0
        looks = 0

        async def deposit(moment: str = "after") -> None:
            nonlocal deposits, looks
            looks += 1
            if moment == "building" and looks > 2:
                return  # a writer that outpaced the rebuild for good would never let it finish
            for account_id in ids:
                await server.mediator.send(Deposit(account_id, "0.01", ctx()))
                deposits += 1

        async with running(reading_only(settings), run_projector=False) as rebuilding:
            hook_the_next_build(read_model_of(rebuilding), monkeypatch, deposit)
            applied = await rebuilding.projector.rebuild()
            assert await read_model_of(rebuilding).live_generation() == 1
        # Deposits went in while the rebuild wrote, and between its last batch and its switch.
        assert deposits == 3 * 4
        assert applied < 6 + deposits  # some events were left to the live projector
        await deposit()  # and more after the switch, into the new generation

        read_model = read_model_of(server)
        folded = await fold_of_all_events(server)
        expected = [await folded.get_account(account_id) for account_id in ids]
        for _ in range(600):  # the live projector catches up (bounded: 600 looks, 50 ms apart)
            if [await read_model.get_account(account_id) for account_id in ids] == expected:
                break
            await asyncio.sleep(0.05)
        assert await read_model.live_generation() == 1
        await assert_equal_to_the_fold(server, ids)


class Heard:
    """A subscriber plugin, as examples/audit_plugin is: every event ``EventsProjected``
    brought, as (stream, version), in the order heard."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    async def handle(self, notification: EventsProjected) -> None:
        self.events += [(event.stream_id, event.version) for event in notification.events]

    @hookimpl
    def balance_register(self, registry: Registry) -> None:
        registry.notification_handler(EventsProjected, lambda: self)


async def project_until_version(app: Application, account_id: str, version: int) -> None:
    """Catch up until the read model has the account at ``version`` (see project_until_seen)."""
    for _ in range(200):
        await app.projector.catch_up()
        view = await app.backends["read_model"].get_account(account_id)
        if view is not None and view.version >= version:
            return
    raise AssertionError(f"{account_id} never reached version {version} in the read model")


async def test_events_the_live_projector_applies_again_after_a_switch_are_published_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live projector applied deposits into the old generation that the rebuild's does not
    hold when it switches: it applies them again into the new one, and a subscriber hears of
    every event once."""
    heard = Heard()
    async with (
        running(settings, run_projector=False, extra_plugins={"heard": heard}) as app,
        running(reading_only(settings), run_projector=False) as rebuilding,
    ):
        account = (await app.mediator.send(OpenAccount("EUR", ctx(), "1.00"))).id
        await project_until_version(app, account, 2)  # opened, and its initial deposit

        async def ahead_of_the_rebuild(moment: str) -> None:
            if moment == "before switch":  # the rebuild has caught up: these are not in it
                for _ in range(3):
                    await app.mediator.send(Deposit(account, "0.01", ctx()))
                await project_until_version(app, account, 5)

        hook_the_next_build(read_model_of(rebuilding), monkeypatch, ahead_of_the_rebuild)
        await rebuilding.projector.rebuild()
        assert await read_model_of(app).live_generation() == 1
        await app.mediator.send(Deposit(account, "0.01", ctx()))
        await project_until_version(app, account, 6)  # 3 to 5 applied again, then 6

        assert heard.events == [(f"account-{account}", version) for version in range(1, 7)]
        await assert_equal_to_the_fold(app, [account])


KILL_AFTER_THE_FIRST_BATCH = """
import asyncio, os, signal, sys
from api.bootstrap import bootstrap
from core.config import load_settings

async def main():
    app = bootstrap(load_settings(), run_projector=False)
    await app.start()

    def progress(applied, total):
        if applied:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up runs

    await app.projector.rebuild(progress)

asyncio.run(main())
"""


def environment_of(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BALANCE_")}
    env.update(
        PYTHONPATH=str(ROOT),
        BALANCE_DATA_DIR=str(settings.data_dir),
        BALANCE_EVENT_STORE=settings.event_store,
        BALANCE_READ_MODEL=settings.read_model,
        BALANCE_AUTHENTICATOR="jwt",
    )
    for key, value in settings.values.items():
        env[f"BALANCE_{key.upper()}"] = value
    return env


async def leftover_generations(settings: Settings) -> set[int]:
    if settings.read_model == "sqlite":
        from plugins.sqlite.generation_files import GenerationFiles

        return GenerationFiles(settings.data_dir).existing()
    from plugins.mongo.generations import existing_generations

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.require("mongo_url"))
    try:
        return await existing_generations(client[settings.require("mongo_database")])
    finally:
        await client.close()


async def expire_the_dead_lease(app: Application, settings: Settings) -> None:
    """The killed rebuild's claim holds until its lease expires (``plugins.mongo.claims``);
    here it is expired at once, as it is once the lease has passed."""
    from plugins.mongo.claims import CLAIMS

    with pytest.raises(ProjectionBusyError, match="another `balance projections rebuild`"):
        await app.projector.rebuild()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.require("mongo_url"))
    try:
        claims = client[settings.require("mongo_database")][CLAIMS]
        await claims.update_many({}, {"$set": {"expires_at": datetime.now(UTC)}})
    finally:
        await client.close()


async def test_a_rebuild_killed_before_its_switch_leaves_the_live_model_and_is_cleaned_up(
    settings: Settings,
) -> None:
    async with running(settings) as app:
        account = await app.mediator.send(OpenAccount("EUR", ctx(), "10.00"))
        await project_until_seen(app, account.id)
        live = read_model_of(app)
        await live.apply(PROJECTION, [AccountOpenedView(GHOST)], 0)
        killed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", KILL_AFTER_THE_FIRST_BATCH],
            cwd=ROOT,
            env=environment_of(settings),
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert killed.returncode == -9, killed.stderr
        # The live model is untouched; the killed rebuild's generation is left behind.
        assert await live.live_generation() == 0
        assert await live.get_account("ghost") == GHOST
        assert await leftover_generations(settings) == {0, 1}
        if settings.read_model == "mongo":
            await expire_the_dead_lease(app, settings)

        assert await app.projector.rebuild() == 2
        assert await live.live_generation() == 2
        assert await leftover_generations(settings) == {2}
        await assert_equal_to_the_fold(app, [account.id])


@pytest.mark.mongo
async def test_mongo_readers_that_poll_the_pointer_move_within_a_poll_and_never_read_nothing(
    tmp_path: Path,
) -> None:
    from tests.mongo.support import drop_database, mongo_url, unique_database

    url, database = mongo_url(), unique_database()
    values = {"mongo_url": url, "mongo_database": database, "mongo_generation_poll_ms": "200"}
    settings = dataclasses.replace(settings_for("sqlite", tmp_path, **values), read_model="mongo")
    try:
        async with (
            running(settings, run_projector=False) as app,
            running(settings, run_projector=False) as reader_process,
        ):
            account = await app.mediator.send(OpenAccount("EUR", ctx(), "10.00"))
            await project_until_seen(app, account.id)
            await read_model_of(app).apply(PROJECTION, [AccountOpenedView(GHOST)], 0)
            reader = read_model_of(reader_process)
            assert await reader.get_account("ghost") == GHOST  # it has looked at the pointer
            answers: list[bool] = []
            stop = asyncio.Event()

            async def read_freely() -> None:
                while not stop.is_set():
                    real = await reader.get_account(account.id)
                    assert real is not None  # the old collections outlive every reader's poll
                    answers.append(await reader.get_account("ghost") is not None)
                    await asyncio.sleep(0.01)

            reading = asyncio.create_task(read_freely())
            await app.projector.rebuild()  # waits three polls before it drops the old generation
            stop.set()
            await reading
            switched = answers.index(False) if False in answers else len(answers)
            assert answers == [True] * switched + [False] * (len(answers) - switched)
            assert await reader.get_account("ghost") is None  # a poll has passed since the switch
            assert await leftover_generations(settings) == {1}
    finally:
        await drop_database(url, database)
