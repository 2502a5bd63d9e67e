"""Jepsen-style bank tests: concurrent clients move money through real ``balance serve``
processes while the server is SIGKILLed and started again (and, on Kafka + Mongo, the broker
goes down for a while); at the end the store, the clients' answers and the read model must agree
to the cent. The harness and the checker are in tests/production/bank.py; each test prints its
figures (run with ``-rA`` or ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.production.bank import (
    Bank,
    CommandWitness,
    Nemesis,
    Report,
    Server,
    Unanswered,
    check_read_model,
    check_resent,
    check_store,
    kafka_control,
    ledger_figures,
    store_records,
    unanswered_round,
)
from tests.support import settings_for

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("kafka+mongo", id="kafka+mongo", marks=[pytest.mark.kafka, pytest.mark.mongo]),
]
ACCOUNTS = 12
INITIAL = 1_000_00  # cents per account
ROUNDS = 6  # of the unanswered-command test, one kill each
# The faults in order. Kafka + Mongo: four kills around two broker outages (the broker stopped,
# later killed).
PLANS = {
    "sqlite": ["kill"] * 5,
    "kafka+mongo": ["kill", "kill", "broker-stop", "kill", "kill", "broker-kill"],
}


async def _finish(
    bank: Bank,
    tasks: list[asyncio.Task[None]],
    nemesis: Nemesis,
    title: str,
    started: float,
    clients: int,
    extra: dict[str, object] | None = None,
) -> Report:
    """Stop the load, read the store, check everything; print the figures; the report."""
    bank.stop.set()
    await asyncio.gather(*tasks)
    report = Report()
    records = await store_records(bank.server.settings)
    accounts = check_store(bank, records, report)
    await check_read_model(bank, accounts, report)
    check_resent(nemesis, report)
    report.figures = {
        **ledger_figures(bank, nemesis, clients),
        **(extra or {}),
        **report.figures,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(report.text(title))
    return report


async def _with_load(
    backend: str,
    tmp_path: Path,
    clients: int,
    run: Callable[[Bank, Nemesis], Awaitable[dict[str, object] | None]],
    title: str,
) -> Report:
    started = time.monotonic()
    settings = settings_for(backend, tmp_path / "data", authenticator="jwt")
    server = Server(settings, tmp_path / "server.log")
    broker = kafka_control(settings) if backend == "kafka+mongo" else None
    seed = random.randrange(1 << 30)
    await server.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        bank = Bank(server, seed)
        async with bank.client() as client:
            await bank.open_accounts(client, ACCOUNTS, INITIAL)
        nemesis = Nemesis(bank, broker)
        tasks = [asyncio.create_task(bank.client_loop(i)) for i in range(clients)]
        try:
            extra = await run(bank, nemesis)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return await _finish(
            bank, tasks, nemesis, f"{title} [{backend}, seed {seed}]", started, clients, extra
        )
    finally:
        await server.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_bank_under_kills_conserves_money_and_keeps_every_acknowledged_write_once(
    backend: str, tmp_path: Path
) -> None:
    async def run(bank: Bank, nemesis: Nemesis) -> None:
        await nemesis.run(PLANS[backend])

    report = await _with_load(backend, tmp_path, 12, run, "bank")
    assert not report.failures, "\n".join(report.failures)
    figures = report.figures
    assert figures["kills"] == PLANS[backend].count("kill")
    assert figures["broker_outages"] == sum(s.startswith("broker") for s in PLANS[backend])
    assert figures["money_off"] == "0.00"
    assert figures["resent_same_answer"] == figures["resent_after_restart"] > 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_command_written_then_killed_before_its_answer_is_replayed_not_applied_again(
    backend: str, tmp_path: Path
) -> None:
    """Under load, each round sends one command on a connection of its own, SIGKILLs the server
    as soon as the store holds the command's events, starts it again and retries the command
    with the same key. The retry must answer with what the first run wrote, write nothing more,
    and equal the first answer when the dead server had sent it. In half of the rounds the
    client hangs up at once, so the first answer is surely lost."""
    rounds: list[Unanswered] = []

    async def run(bank: Bank, nemesis: Nemesis) -> dict[str, object]:
        async with bank.client() as client:
            await bank.open_accounts(client, 2, INITIAL)
        # Kept out of the load, so that the rounds' withdrawals and transfers never lack funds.
        source, destination = bank.accounts[-2:]
        del bank.accounts[-2:]
        bank.side_accounts += [source, destination]
        commands = [
            lambda: bank.movement("deposit", source, 1_25),
            lambda: bank.movement("withdraw", source, 75),
            lambda: bank.transfer(source, destination, 2_50),
        ]
        witness = CommandWitness(bank.server.settings)
        try:
            for index in range(ROUNDS):
                await bank.wait_progress(nemesis.progress, nemesis.spacing)
                op = commands[index % len(commands)]()
                hang_up = index >= ROUNDS // 2
                rounds.append(await unanswered_round(bank, nemesis, witness, op, hang_up))
        finally:
            witness.close()
        return {
            "unanswered_rounds": len(rounds),
            "client_hung_up": sum(r.hung_up for r in rounds),
            "first_answer_read_after_the_kill": sum(r.original is not None for r in rounds),
        }

    report = await _with_load(backend, tmp_path, 6, run, "unanswered commands")
    assert not report.failures, "\n".join(report.failures)
    assert len(rounds) == report.figures["kills"] == ROUNDS
    for round_ in rounds:
        op, first = round_.op, round_.written[0]
        assert op.acknowledged, (op.kind, op.attempts)
        # The retry answered with the first run's events (the checker saw no other for the key).
        if op.kind == "transfer":
            assert first.stream_id == f"transfer-{op.answer['id']}"
        else:
            assert (op.answer["id"], op.answer["version"]) == (first.event_id, first.version)
        if round_.hung_up:
            assert round_.original is None
        elif round_.original is not None:
            assert (op.status, op.answer) == round_.original
    assert report.figures["resent_same_answer"] == report.figures["resent_after_restart"] > 0
