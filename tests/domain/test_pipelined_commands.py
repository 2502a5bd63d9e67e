"""Commands on one account with a store that pipelines appends: the account's turn passes on
once an append is queued, each answer waits for its own commit, and a failure in a chain of
queued appends is undone by deciding again from the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from api.bootstrap import Application
from core.errors import StoreUnavailableError
from core.ports import EventStore
from handlers.accounts.messages import CloseAccount, Deposit, OpenAccount, Withdraw
from tests.held_store import HeldStore
from tests.support import ctx, running, settings_for


async def until(condition: Callable[[], bool]) -> None:
    """Lets the other tasks run until ``condition`` holds (a bounded number of loop turns)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def turns(count: int = 50) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


@pytest.fixture
def store() -> HeldStore:
    return HeldStore()


@pytest.fixture
async def app(store: HeldStore, tmp_path: Path) -> AsyncIterator[Application]:
    async with running(settings_for("memory", tmp_path), overrides={EventStore: store}) as app:
        yield app


async def held_account(app: Application, store: HeldStore, initial: str | None = None) -> str:
    """A new account; the appends after it are held."""
    account = await app.mediator.send(OpenAccount("EUR", ctx(), initial_deposit=initial))
    store.holding = True
    return account.id


async def versions(store: HeldStore, account_id: str) -> list[int]:
    return [record.version for record in await store.read(f"account-{account_id}")]


async def test_the_next_command_is_decided_while_the_previous_one_commits(
    app: Application, store: HeldStore
) -> None:
    send = app.mediator.send
    account_id = await held_account(app, store)
    first = asyncio.create_task(send(Deposit(account_id, "1.00", ctx())))
    second = asyncio.create_task(send(Deposit(account_id, "2.00", ctx())))
    # Both are queued while neither committed: the second was decided on top of the first.
    await until(lambda: len(store.queued) == 2)
    assert [held.expected for held in store.queued] == [1, 2]
    await turns()
    assert not first.done()
    assert not second.done()

    store.release()
    receipt = await first
    assert (receipt.movement.version, receipt.movement.balance_after) == (2, 100)
    await turns()
    assert not second.done()  # the first one's commit does not answer the second
    store.release()
    receipt = await second
    assert (receipt.movement.version, receipt.movement.balance_after) == (3, 300)
    assert await versions(store, account_id) == [1, 2, 3]


async def test_a_failure_mid_chain_fails_the_later_appends_and_their_commands_retry(
    app: Application, store: HeldStore
) -> None:
    send = app.mediator.send
    account_id = await held_account(app, store)
    tasks = [
        asyncio.create_task(send(Deposit(account_id, amount, ctx())))
        for amount in ("1.00", "2.00", "4.00")
    ]
    await until(lambda: len(store.queued) == 3)
    assert [held.expected for held in store.queued] == [1, 2, 3]
    store.release()
    store.release(StoreUnavailableError("the disk is gone"))
    store.release()  # chained to the failed one: refused, so its command decides again
    await until(lambda: len(store.queued) == 1)
    assert store.queued[0].expected == 2  # decided from the store, not from the chain
    store.release()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    first, failed, retried = results
    assert not isinstance(first, BaseException)
    assert first.movement.balance_after == 100
    assert isinstance(failed, StoreUnavailableError)
    assert not isinstance(retried, BaseException)
    assert (retried.movement.version, retried.movement.balance_after) == (3, 500)
    assert await versions(store, account_id) == [1, 2, 3]


@pytest.mark.parametrize("first_run_fails", [False, True])
async def test_a_repeat_while_the_first_run_is_in_flight_waits_for_its_outcome(
    app: Application, store: HeldStore, first_run_fails: bool
) -> None:
    """It replays the first run once that committed, or runs the command if that failed."""
    send = app.mediator.send
    account_id = await held_account(app, store)
    first = asyncio.create_task(send(Deposit(account_id, "1.00", ctx(command_id="d-1"))))
    await until(lambda: len(store.queued) == 1)
    repeat = asyncio.create_task(send(Deposit(account_id, "1.00", ctx(command_id="d-1"))))
    await turns()
    assert len(store.queued) == 1  # the repeat appends nothing...
    assert not repeat.done()  # ...and does not answer from an uncommitted record
    if first_run_fails:
        store.release(StoreUnavailableError("the disk is gone"))
        with pytest.raises(StoreUnavailableError):
            await first
        await until(lambda: len(store.queued) == 1)
        store.release()
        receipt = await repeat
        assert (receipt.movement.version, receipt.movement.balance_after) == (2, 100)
    else:
        store.release()
        assert await repeat == await first
    assert await versions(store, account_id) == [1, 2]


async def test_close_is_decided_on_the_balance_with_queued_appends(
    app: Application, store: HeldStore
) -> None:
    send = app.mediator.send
    account_id = await held_account(app, store, "1.00")
    withdrawal = asyncio.create_task(send(Withdraw(account_id, "1.00", ctx())))
    closing = asyncio.create_task(send(CloseAccount(account_id, ctx())))
    await until(lambda: len(store.queued) == 2)  # the close saw the queued zero balance
    store.release()
    store.release()
    await withdrawal
    assert (await closing).status == "closed"
    assert await versions(store, account_id) == [1, 2, 3, 4]


async def test_a_refusal_resting_on_a_queued_append_is_decided_again_once_it_settled(
    app: Application, store: HeldStore
) -> None:
    send = app.mediator.send
    account_id = await held_account(app, store)
    deposit = asyncio.create_task(send(Deposit(account_id, "1.00", ctx())))
    await until(lambda: len(store.queued) == 1)
    # Not at zero with the deposit in it: the close waits for the deposit's outcome.
    closing = asyncio.create_task(send(CloseAccount(account_id, ctx())))
    await turns()
    assert not closing.done()
    assert len(store.queued) == 1
    store.release(StoreUnavailableError("the disk is gone"))
    with pytest.raises(StoreUnavailableError):
        await deposit
    await until(lambda: len(store.queued) == 1)
    store.release()
    assert (await closing).status == "closed"
    assert await versions(store, account_id) == [1, 2]
