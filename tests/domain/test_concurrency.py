"""Concurrent commands on one account: no lost update, no overdraft, no version gaps."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from api.bootstrap import Application
from core.errors import ConcurrencyError
from core.ports import EventStore
from handlers.accounts.errors import InsufficientFundsError
from handlers.accounts.messages import Deposit, GetAccount, OpenAccount, Withdraw
from handlers.accounts.repositories import Accounts
from tests.support import ALICE, ctx


async def test_fifty_concurrent_withdrawals_of_ten_from_a_hundred(app: Application) -> None:
    send = app.mediator.send
    account = await send(OpenAccount("EUR", ctx(), initial_deposit="100.00"))
    results = await asyncio.gather(
        *(send(Withdraw(account.id, "10.00", ctx())) for _ in range(50)), return_exceptions=True
    )
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(succeeded) == 10
    assert all(isinstance(r, InsufficientFundsError) for r in refused), refused
    assert sorted(r.movement.balance_after for r in succeeded) == list(range(0, 10000, 1000))

    records = await app.container.resolve(EventStore).read(f"account-{account.id}")
    assert [r.version for r in records] == list(range(1, 13))
    view = await send(GetAccount(account.id, ALICE, min_version=12))
    assert view.balance == 0


async def test_concurrent_deposits_lose_nothing(app: Application) -> None:
    send = app.mediator.send
    account = await send(OpenAccount("EUR", ctx()))
    await asyncio.gather(*(send(Deposit(account.id, "1.00", ctx())) for _ in range(40)))
    view = await send(GetAccount(account.id, ALICE, min_version=41))
    assert view.balance == 4000
    assert view.version == 41


async def test_two_hundred_concurrent_deposits_on_one_account(app: Application) -> None:
    """Pipelined on stores that queue appends: exact balance, versions 1..N without a gap."""
    assert app.container.resolve(Accounts).pipelined
    send = app.mediator.send
    account = await send(OpenAccount("EUR", ctx()))
    receipts = await asyncio.gather(
        *(send(Deposit(account.id, f"{n}.00", ctx())) for n in range(1, 201))
    )
    total = sum(range(1, 201)) * 100
    assert sorted(r.movement.version for r in receipts) == list(range(2, 202))
    assert max(r.movement.balance_after for r in receipts) == total
    records = await app.container.resolve(EventStore).read(f"account-{account.id}")
    assert [r.version for r in records] == list(range(1, 202))
    view = await send(GetAccount(account.id, ALICE, min_version=201))
    assert (view.version, view.balance) == (201, total)


async def test_a_conflict_from_another_writer_is_retried(app: Application) -> None:
    """Another process appends behind this one's cache: the command reloads and succeeds."""
    send = app.mediator.send
    account = await send(OpenAccount("EUR", ctx(), initial_deposit="5.00"))
    store = app.container.resolve(EventStore)
    stream = f"account-{account.id}"
    # Simulate a foreign writer by appending a copy of the last event with the next version.
    last = (await store.read(stream))[-1]
    foreign = msgspec.structs.replace(
        last,
        version=3,
        event_id="f-1",
        data=msgspec.Raw(b'{"amount":100,"balance_after":600}'),
        position=0,
    )
    await store.append(stream, 2, [foreign])
    receipt = await send(Deposit(account.id, "1.00", ctx()))
    assert (receipt.movement.version, receipt.movement.balance_after) == (4, 700)

    # With an explicit expected version the conflict is the caller's to resolve: no retry.
    await store.append(stream, 4, [msgspec.structs.replace(foreign, version=5, event_id="f-2")])
    with pytest.raises(ConcurrencyError) as conflict:
        await send(Deposit(account.id, "1.00", ctx(expected_version=4)))
    assert conflict.value.expected == 4
