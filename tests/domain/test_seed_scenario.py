"""The seed scenario through the mediator, on every embedded backend."""

from __future__ import annotations

from api.bootstrap import Application
from handlers.accounts.messages import Deposit, GetAccount, GetStatement, OpenAccount, Withdraw
from handlers.accounts.money import format_amount
from tests.support import ALICE, ctx


async def test_seed_scenario(app: Application) -> None:
    send = app.mediator.send
    a = await send(OpenAccount("EUR", ctx()))
    b = await send(OpenAccount("EUR", ctx()))
    await send(Deposit(a.id, "500.00", ctx()))
    await send(Deposit(b.id, "300.00", ctx()))
    await send(Withdraw(b.id, "100.00", ctx()))
    await send(Withdraw(a.id, "200.00", ctx()))

    view_a = await send(GetAccount(a.id, ALICE, min_version=3))
    view_b = await send(GetAccount(b.id, ALICE, min_version=3))
    assert format_amount(view_a.balance, "EUR") == "300.00"
    assert format_amount(view_b.balance, "EUR") == "200.00"

    statement_a = await send(GetStatement(a.id, ALICE, min_version=3))
    statement_b = await send(GetStatement(b.id, ALICE, min_version=3))
    assert [(m.kind, m.amount, m.balance_after) for m in statement_a.items] == [
        ("deposit", 50000, 50000),
        ("withdrawal", 20000, 30000),
    ]
    assert [(m.kind, m.amount, m.balance_after) for m in statement_b.items] == [
        ("deposit", 30000, 30000),
        ("withdrawal", 10000, 20000),
    ]
    assert statement_a.currency == "EUR"
