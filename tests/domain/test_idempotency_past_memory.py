"""A command id is recognised for the life of the account, also once it has left the account's
memory of recent command ids (``COMMAND_MEMORY``): the store's index of command ids answers then.

Each test first pushes the command id out of that memory, and checks it is out, so what follows
runs past the memory's edge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.bootstrap import Application
from core.ports import EventStore
from handlers.accounts.account import COMMAND_MEMORY, AccountState
from handlers.accounts.errors import IdempotencyConflictError
from handlers.accounts.messages import Deposit, OpenAccount, Withdraw
from handlers.accounts.repositories import Accounts
from handlers.accounts.views import AccountView
from tests.support import ctx, running, settings_for

BACKENDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("kafka+mongo", marks=[pytest.mark.kafka, pytest.mark.mongo]),
]


@pytest.fixture(params=BACKENDS)
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Application]:
    async with running(settings_for(request.param, tmp_path)) as application:
        yield application


async def _version(app: Application, account_id: str) -> int:
    return await app.container.resolve(EventStore).stream_version(f"account-{account_id}")


async def _state(app: Application, account_id: str) -> AccountState:
    return await app.container.resolve(Accounts).load(f"account-{account_id}")


async def _push_out_of_memory(app: Application, account_id: str, prefix: str) -> None:
    """COMMAND_MEMORY keyed deposits of 0.01: every earlier command id leaves the memory."""
    for start in range(0, COMMAND_MEMORY, 100):
        await asyncio.gather(
            *(
                app.mediator.send(Deposit(account_id, "0.01", ctx(command_id=f"{prefix}-{n}")))
                for n in range(start, min(start + 100, COMMAND_MEMORY))
            )
        )


async def test_a_late_retry_of_an_open_replays_it_and_never_reopens(app: Application) -> None:
    send = app.mediator.send
    opened: AccountView = await send(
        OpenAccount("EUR", ctx(command_id="open-k"), initial_deposit="100.00")
    )
    assert opened.version == 2
    await _push_out_of_memory(app, opened.id, "fill")
    state = await _state(app, opened.id)
    assert "open-k" not in state.commands
    version = await _version(app, opened.id)
    assert version == 2 + COMMAND_MEMORY

    again = await send(OpenAccount("EUR", ctx(command_id="open-k"), initial_deposit="100.00"))
    assert again == opened
    for other in (
        OpenAccount("JPY", ctx(command_id="open-k"), initial_deposit="100"),
        OpenAccount("EUR", ctx(command_id="open-k")),
        OpenAccount("EUR", ctx(command_id="open-k"), initial_deposit="1.00"),
    ):
        with pytest.raises(IdempotencyConflictError):
            await send(other)

    assert await _version(app, opened.id) == version
    after = await _state(app, opened.id)
    assert (after.currency, after.balance) == ("EUR", 10_000 + COMMAND_MEMORY)


async def test_a_late_retry_of_a_deposit_or_withdrawal_replays_it(app: Application) -> None:
    send = app.mediator.send
    account = await send(OpenAccount("EUR", ctx(), initial_deposit="50.00"))
    deposited = await send(Deposit(account.id, "7.00", ctx(command_id="dep-k")))
    withdrawn = await send(Withdraw(account.id, "3.00", ctx(command_id="wd-k")))
    await _push_out_of_memory(app, account.id, "fill")
    state = await _state(app, account.id)
    assert "dep-k" not in state.commands
    assert "wd-k" not in state.commands
    version = await _version(app, account.id)

    assert await send(Deposit(account.id, "7.00", ctx(command_id="dep-k"))) == deposited
    assert await send(Withdraw(account.id, "3.00", ctx(command_id="wd-k"))) == withdrawn
    for other in (
        Deposit(account.id, "7.01", ctx(command_id="dep-k")),
        Withdraw(account.id, "7.00", ctx(command_id="dep-k")),
        Withdraw(account.id, "3.00", ctx(command_id="wd-k"), description="other"),
    ):
        with pytest.raises(IdempotencyConflictError):
            await send(other)
    assert await _version(app, account.id) == version

    # A new key on an account whose memory is full is a new command.
    fresh = await send(Deposit(account.id, "1.00", ctx(command_id="dep-new")))
    assert fresh.movement.version == version + 1
