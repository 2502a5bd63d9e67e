"""The accounts domain's rules, each a typed error, through the mediator on the memory backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.bootstrap import Application
from core.auth import ForbiddenError
from core.errors import ConcurrencyError
from core.ports import EventStore, Principal
from handlers.accounts.errors import (
    AccountClosedError,
    AccountNotFoundError,
    BalanceLimitError,
    CurrencyMismatchError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidAmountError,
    NonZeroBalanceError,
    SameAccountError,
    UnknownCurrencyError,
)
from handlers.accounts.messages import (
    CloseAccount,
    Deposit,
    GetAccount,
    OpenAccount,
    Transfer,
    Withdraw,
)
from handlers.accounts.money import MAX_MINOR_UNITS, format_amount
from tests.support import ALICE, BOB, TELLER, ctx, running, settings_for


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Application]:
    async with running(settings_for("memory", tmp_path)) as application:
        yield application


async def _events(app: Application, account_id: str) -> int:
    return await app.container.resolve(EventStore).stream_version(f"account-{account_id}")


@pytest.mark.parametrize(
    ("currency", "amount", "minor"),
    [("EUR", "500.00", 50000), ("EUR", "0.01", 1), ("JPY", "500", 500), ("KWD", "1.234", 1234)],
)
async def test_amounts_follow_the_currency_exponent(
    app: Application, currency: str, amount: str, minor: int
) -> None:
    account = await app.mediator.send(OpenAccount(currency, ctx()))
    receipt = await app.mediator.send(Deposit(account.id, amount, ctx()))
    assert receipt.movement.amount == minor
    assert format_amount(receipt.movement.balance_after, currency) == amount


@pytest.mark.parametrize(
    ("currency", "amount"),
    [
        ("EUR", "1.001"),
        ("JPY", "1.5"),
        ("KWD", "0.0001"),
        ("EUR", "0"),
        ("EUR", "0.00"),
        ("EUR", "-5.00"),
        ("EUR", "abc"),
        ("EUR", "1e3"),
        ("EUR", "NaN"),
        ("EUR", " 1.00"),
        ("EUR", format_amount(MAX_MINOR_UNITS + 1, "EUR")),
    ],
)
async def test_bad_amounts_are_refused_and_nothing_is_written(
    app: Application, currency: str, amount: str
) -> None:
    account = await app.mediator.send(OpenAccount(currency, ctx()))
    with pytest.raises(InvalidAmountError) as refused:
        await app.mediator.send(Deposit(account.id, amount, ctx()))
    assert refused.value.field == "amount"
    assert await _events(app, account.id) == 1


async def test_unknown_currency_is_refused(app: Application) -> None:
    with pytest.raises(UnknownCurrencyError):
        await app.mediator.send(OpenAccount("XYZ", ctx()))


async def test_balance_never_goes_over_the_maximum(app: Application) -> None:
    account = await app.mediator.send(
        OpenAccount("EUR", ctx(), initial_deposit=format_amount(MAX_MINOR_UNITS, "EUR"))
    )
    with pytest.raises(BalanceLimitError):
        await app.mediator.send(Deposit(account.id, "0.01", ctx()))


async def test_withdrawal_never_takes_the_balance_below_zero(app: Application) -> None:
    account = await app.mediator.send(OpenAccount("EUR", ctx(), initial_deposit="10.00"))
    with pytest.raises(InsufficientFundsError):
        await app.mediator.send(Withdraw(account.id, "10.01", ctx()))
    receipt = await app.mediator.send(Withdraw(account.id, "10.00", ctx()))
    assert receipt.movement.balance_after == 0


async def test_close_only_at_zero_and_no_movement_after(app: Application) -> None:
    account = await app.mediator.send(OpenAccount("EUR", ctx(), initial_deposit="1.00"))
    with pytest.raises(NonZeroBalanceError):
        await app.mediator.send(CloseAccount(account.id, ctx()))
    await app.mediator.send(Withdraw(account.id, "1.00", ctx()))
    closed = await app.mediator.send(CloseAccount(account.id, ctx()))
    assert closed.status == "closed"
    assert closed.closed_at is not None
    with pytest.raises(AccountClosedError):
        await app.mediator.send(Deposit(account.id, "1.00", ctx()))
    with pytest.raises(AccountClosedError):
        await app.mediator.send(CloseAccount(account.id, ctx()))


async def test_transfer_rules(app: Application) -> None:
    send = app.mediator.send
    eur = await send(OpenAccount("EUR", ctx(), initial_deposit="50.00"))
    usd = await send(OpenAccount("USD", ctx()))
    other = await send(OpenAccount("EUR", ctx()))
    with pytest.raises(SameAccountError):
        await send(Transfer(eur.id, eur.id, "1.00", ctx()))
    with pytest.raises(CurrencyMismatchError):
        await send(Transfer(eur.id, usd.id, "1.00", ctx()))
    with pytest.raises(InsufficientFundsError):
        await send(Transfer(eur.id, other.id, "50.01", ctx()))
    await send(CloseAccount(other.id, ctx()))
    with pytest.raises(AccountClosedError):
        await send(Transfer(eur.id, other.id, "1.00", ctx()))
    assert await _events(app, eur.id) == 2


async def test_customers_cannot_see_or_touch_other_accounts(app: Application) -> None:
    send = app.mediator.send
    alices = await send(OpenAccount("EUR", ctx(ALICE), initial_deposit="10.00"))
    bobs = await send(OpenAccount("EUR", ctx(BOB)))
    for request in (
        Deposit(alices.id, "1.00", ctx(BOB)),
        Withdraw(alices.id, "1.00", ctx(BOB)),
        CloseAccount(alices.id, ctx(BOB)),
        Transfer(alices.id, bobs.id, "1.00", ctx(BOB)),
        GetAccount(alices.id, BOB, min_version=2),
    ):
        with pytest.raises(AccountNotFoundError):
            await send(request)
    # A teller may act on any account, and open one for a customer.
    await send(Deposit(alices.id, "1.00", ctx(TELLER)))
    opened = await send(OpenAccount("EUR", ctx(TELLER), owner="carol"))
    assert opened.owner == "carol"
    # A customer cannot open an account for someone else: the owner is the caller.
    assert (await send(OpenAccount("EUR", ctx(BOB), owner="carol"))).owner == "bob"


async def test_scopes_are_required(app: Application) -> None:
    reader = Principal("alice", frozenset({"accounts:read"}))
    with pytest.raises(ForbiddenError):
        await app.mediator.send(OpenAccount("EUR", ctx(reader)))
    account = await app.mediator.send(OpenAccount("EUR", ctx()))
    writer = Principal("alice", frozenset({"accounts:write"}))
    with pytest.raises(ForbiddenError):
        await app.mediator.send(GetAccount(account.id, writer))


async def test_same_command_id_returns_the_first_result_and_writes_nothing(
    app: Application,
) -> None:
    send = app.mediator.send
    opened = await send(OpenAccount("EUR", ctx(command_id="open-1"), initial_deposit="5.00"))
    again = await send(OpenAccount("EUR", ctx(command_id="open-1"), initial_deposit="5.00"))
    assert again == opened
    first = await send(Deposit(opened.id, "10.00", ctx(command_id="dep-1")))
    second = await send(Deposit(opened.id, "10.00", ctx(command_id="dep-1")))
    assert second == first
    assert await _events(app, opened.id) == 3
    with pytest.raises(IdempotencyConflictError):
        await send(Deposit(opened.id, "11.00", ctx(command_id="dep-1")))
    with pytest.raises(IdempotencyConflictError):
        await send(OpenAccount("USD", ctx(command_id="open-1")))
    assert await _events(app, opened.id) == 3


async def test_expected_version_is_checked_and_never_retried(app: Application) -> None:
    account = await app.mediator.send(OpenAccount("EUR", ctx()))
    with pytest.raises(ConcurrencyError):
        await app.mediator.send(Deposit(account.id, "1.00", ctx(expected_version=5)))
    receipt = await app.mediator.send(Deposit(account.id, "1.00", ctx(expected_version=1)))
    assert receipt.movement.version == 2
