"""For any sequence of commands, the read model agrees with the fold of the event stream and no
balance is ever negative."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.ports import EventStore
from handlers.accounts import events as ev
from handlers.accounts.codec import decode_event
from handlers.accounts.errors import DomainError
from handlers.accounts.messages import (
    Deposit,
    GetAccount,
    GetStatement,
    OpenAccount,
    Transfer,
    Withdraw,
)
from handlers.accounts.money import format_amount
from tests.support import ALICE, ctx, running, settings_for

amounts = st.integers(min_value=1, max_value=50_000).map(lambda m: format_amount(m, "EUR"))
commands = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), st.integers(0, 2), amounts),
        st.tuples(st.just("withdraw"), st.integers(0, 2), amounts),
        st.tuples(st.just("transfer"), st.tuples(st.integers(0, 2), st.integers(0, 2)), amounts),
    ),
    max_size=25,
)


def _fold(records: list[object]) -> int:
    balance = 0
    for record in records:
        match decode_event(record):  # type: ignore[arg-type]
            case (
                ev.MoneyDeposited(amount=a)
                | ev.TransferCredited(amount=a)
                | ev.TransferRefunded(amount=a)
            ):
                balance += a
            case ev.MoneyWithdrawn(amount=a) | ev.TransferDebited(amount=a):
                balance -= a
            case _:
                pass
        assert balance >= 0
    return balance


async def _run(backend: str, script: list[tuple[str, object, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with running(settings_for(backend, Path(tmp))) as app:
            send = app.mediator.send
            ids = [(await send(OpenAccount("EUR", ctx()))).id for _ in range(3)]
            for kind, target, amount in script:
                try:
                    if kind == "deposit":
                        await send(Deposit(ids[target], amount, ctx()))  # type: ignore[index]
                    elif kind == "withdraw":
                        await send(Withdraw(ids[target], amount, ctx()))  # type: ignore[index]
                    else:
                        source, destination = target  # type: ignore[misc]
                        await send(Transfer(ids[source], ids[destination], amount, ctx()))
                except DomainError:
                    pass
            store = app.container.resolve(EventStore)
            for account_id in ids:
                records = await store.read(f"account-{account_id}")
                folded = _fold(records)  # type: ignore[arg-type]
                version = records[-1].version
                view = await send(GetAccount(account_id, ALICE, min_version=version))
                assert view.balance == folded
                assert view.version == version
                statement = await send(GetStatement(account_id, ALICE, limit=200))
                assert [m.version for m in statement.items] == list(range(2, version + 1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=commands)
def test_read_model_equals_the_fold_of_the_stream_on_memory(script: list) -> None:  # type: ignore[type-arg]
    asyncio.run(_run("memory", script))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=commands)
def test_read_model_equals_the_fold_of_the_stream_on_sqlite(script: list) -> None:  # type: ignore[type-arg]
    asyncio.run(_run("sqlite", script))
