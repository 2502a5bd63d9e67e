"""Three ``balance serve`` processes on one Kafka topic of 6 partitions, each owning some of them,
with requests sent to all three: the storm, a SIGKILLed owner, a SIGSTOPped owner (a zombie) and
a rolling restart. The harness and the checker are the bank test's (tests/production/bank.py).

Nothing here asserts a duration: the tests wait for outcomes (ownership settled, progress made)
with generous upper bounds that only turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Final

import httpx
import pytest

from handlers.accounts import events as ev
from handlers.accounts.account import account_stream
from handlers.accounts.codec import decode_event
from tests.production.bank import (
    Bank,
    Report,
    Server,
    check_read_model,
    check_store,
    store_records,
)
from tests.support import settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

INSTANCES: Final = 3
PARTITIONS: Final = 6
SETTLE_TIMEOUT: Final = 120.0  # an upper bound on ownership settling; never a verdict
ACCOUNTS: Final = 12
INITIAL: Final = 1_000_00


@asynccontextmanager
async def cluster(tmp_path: Path, count: int = INSTANCES) -> AsyncIterator[list[Server]]:
    """``count`` instances of one deployment, each with its own data directory and advertised
    URL, started together; stopped at the end."""
    shared = settings_for(
        "kafka+mongo",
        tmp_path / "shared",
        authenticator="jwt",
        kafka_partitions=str(PARTITIONS),
        # One deployment verifies tokens with one secret (else each data directory makes its own).
        jwt_secret=secrets.token_urlsafe(48),
    )
    servers: list[Server] = []
    for index in range(count):
        server = Server(shared, tmp_path / f"instance-{index}.log")
        values = {**shared.values, "advertised_url": server.base_url}
        server.settings = replace(shared, data_dir=tmp_path / f"instance-{index}", values=values)
        servers.append(server)
    try:
        await asyncio.gather(*(server.start() for server in servers))
        await settled(servers)
        yield servers
    finally:
        await asyncio.gather(*(server.stop() for server in servers))


async def ownership(server: Server) -> dict[int, bool]:
    """The partitions ``server`` owns, each with whether it is caught up (``/health/ready``)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5.0) as client:
        body = (await client.get("/health/ready")).json()
    owned = body.get("partitions", {})
    return {int(partition): bool(state.get("caught_up")) for partition, state in owned.items()}


async def settled(servers: list[Server], excluding: Server | None = None) -> None:
    """Until the running instances (all but ``excluding``) own every partition exactly once,
    each caught up."""
    running = [server for server in servers if server is not excluding]
    give_up = time.monotonic() + SETTLE_TIMEOUT
    while True:
        views: list[dict[int, bool]] = []
        for server in running:
            try:
                views.append(await ownership(server))
            except httpx.TransportError:
                views.append({})
        owners = [partition for view in views for partition in view]
        if sorted(owners) == list(range(PARTITIONS)) and all(all(view.values()) for view in views):
            return
        if time.monotonic() > give_up:
            tails = "\n".join(server.log_tail(10) for server in running)
            raise AssertionError(f"ownership never settled: {views}\n{tails}")
        await asyncio.sleep(0.5)


@asynccontextmanager
async def checked_load(bank: Bank, title: str, clients: int = 6) -> AsyncIterator[None]:
    """``clients`` clients sending commands to every instance of ``bank`` while the block runs,
    on ``ACCOUNTS`` accounts opened first. When the block ends the load stops, and the store and
    the read model are checked (the report printed under ``title``): no failure, and no
    unexpected answer. When the block fails, the clients are cancelled and nothing is checked."""
    async with bank.client() as client:
        await bank.open_accounts(client, ACCOUNTS, INITIAL)
    tasks = [asyncio.create_task(bank.client_loop(index)) for index in range(clients)]
    try:
        yield
    except BaseException:
        bank.stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    bank.stop.set()
    await asyncio.gather(*tasks)
    report = Report()
    accounts = check_store(bank, await store_records(bank.server.settings), report)
    await check_read_model(bank, accounts, report)
    print(report.text(f"several instances, {title} [seed {bank.seed}]"))
    assert not report.failures, "\n".join(report.failures)
    assert _unexpected(bank) == []


def _unexpected(bank: Bank) -> list[str]:
    """Every answer that is neither a definitive one nor a retryable 503 / concurrent update."""
    return [f"{op.kind} {text}" for op in bank.ops for text in op.unexpected]


async def test_a_storm_of_withdrawals_over_three_instances_takes_exactly_what_there_is(
    tmp_path: Path,
) -> None:
    """60 concurrent withdrawals of 10.00 from an account holding 100.00, sent round-robin to
    the three instances: exactly 10 succeed, the stream's versions have no gap and no
    duplicate, and the balance ends at 0.00 on every instance."""
    async with cluster(tmp_path) as servers:
        bank = Bank(servers[0], seed=1, others=servers[1:])
        async with bank.client() as client:
            await bank.open_accounts(client, 1, 100_00)
        (account,) = bank.accounts
        ops = [bank.movement("withdraw", account, 10_00) for _ in range(60)]
        clients = [bank.client(index) for index in range(INSTANCES)]
        try:
            done = await asyncio.gather(
                *(bank.perform(clients[n % INSTANCES], op) for n, op in enumerate(ops))
            )
        finally:
            await asyncio.gather(*(client.aclose() for client in clients))
        assert sum(op.acknowledged for op in done) == 10
        assert all(op.acknowledged or op.refusal == "insufficient-funds" for op in done)
        assert _unexpected(bank) == []

        records = await store_records(servers[0].settings)
        stream = [r for r in records if r.stream_id == account_stream(account)]
        assert [r.version for r in stream] == list(range(1, len(stream) + 1))
        withdrawn = [e for e in map(decode_event, stream) if isinstance(e, ev.MoneyWithdrawn)]
        assert len(withdrawn) == 10
        last = stream[-1].version
        for index in range(INSTANCES):
            async with bank.client(index) as client:
                response = await client.get(f"/accounts/{account}?min_version={last}")
            assert response.status_code == 200, response.text
            assert response.json()["balance"] == "0.00"


async def test_an_owner_killed_under_load_loses_no_acknowledged_command(tmp_path: Path) -> None:
    """Deposits, withdrawals and transfers across partitions go to all three instances; each
    instance in turn is SIGKILLed, its partitions move to the others (commands keep being
    acknowledged meanwhile), and it starts again. Afterwards every acknowledged command is in the
    topic exactly once, money is conserved, no balance is below zero, transfers are whole and
    the read model equals the fold of the topic."""
    async with cluster(tmp_path) as servers:
        bank = Bank(servers[0], seed=random.randrange(1 << 30), others=servers[1:])
        async with checked_load(bank, "owner kills"):
            for victim in servers:
                await bank.wait_progress(40, 2.0)
                await victim.kill()
                await settled(servers, excluding=victim)
                await bank.wait_progress(40, 1.0)  # served while the victim is down
                await victim.start()
                await settled(servers)


async def test_a_zombie_owner_commits_nothing_and_serves_again_after_it_wakes(
    tmp_path: Path,
) -> None:
    """An owner is SIGSTOPped with commands in flight until its partitions have moved to the
    others, then SIGCONTinued: nothing it tries to commit for the partitions it lost lands
    twice or out of order (the checker sees every acknowledged command exactly once), and it
    rejoins the group and serves again."""
    async with cluster(tmp_path) as servers:
        bank = Bank(servers[0], seed=random.randrange(1 << 30), others=servers[1:])
        zombie = servers[1]
        process = zombie._process
        assert process is not None
        async with checked_load(bank, "zombie"):
            await bank.wait_progress(40, 2.0)
            os.kill(process.pid, signal.SIGSTOP)
            try:
                await settled(servers, excluding=zombie)
                await bank.wait_progress(40, 1.0)
            finally:
                os.kill(process.pid, signal.SIGCONT)
            await settled(servers)
            served = bank.acknowledged()
            await bank.wait_progress(40, 1.0)
            assert bank.acknowledged() > served
        # The woken instance answers commands again, for its own partitions and others'.
        async with bank.client(1) as client:
            for account in bank.accounts[:4]:
                op = await bank.perform(client, bank.movement("deposit", account, 1))
                assert op.acknowledged, op.attempts


async def test_a_rolling_restart_shows_clients_nothing_worse_than_a_503(tmp_path: Path) -> None:
    """Each instance in turn is stopped (SIGTERM) and started again under load: clients see
    definitive answers, 503 with Retry-After or a concurrent update, never another 5xx, and no
    acknowledged write is lost."""
    async with cluster(tmp_path) as servers:
        bank = Bank(servers[0], seed=random.randrange(1 << 30), others=servers[1:])
        async with checked_load(bank, "rolling restart"):
            for server in servers:
                await bank.wait_progress(40, 2.0)
                await server.stop()
                await settled(servers, excluding=server)
                await server.start()
                await settled(servers)
            await bank.wait_progress(40, 1.0)
        statuses = {a.outcome.split()[0] for op in bank.ops for a in op.attempts}
        assert {s for s in statuses if s.startswith("5")} <= {"503"}, statuses


async def test_a_feed_on_one_instance_sees_deposits_made_through_the_others(
    tmp_path: Path,
) -> None:
    """An account's live feed is open on one instance while 60 deposits go, concurrently, to
    the other two: the feed gets each movement once, in version order."""
    async with cluster(tmp_path) as servers:
        bank = Bank(servers[0], seed=2, others=servers[1:])
        async with bank.client() as client:
            await bank.open_accounts(client, 1, 0)
        (account,) = bank.accounts
        async with bank.client(0) as watcher:
            request = watcher.build_request("GET", f"/accounts/{account}/events")
            response = await watcher.send(request, stream=True)
            assert response.status_code == 200, (await response.aread()).decode()
            ids: list[int] = []

            async def read() -> None:
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        ids.append(int(line[4:]))
                        if len(ids) == 60:
                            return

            reader = asyncio.create_task(read())
            ops = [bank.movement("deposit", account, 1_00) for _ in range(60)]
            senders = [bank.client(index) for index in (1, 2)]
            try:
                done = await asyncio.gather(
                    *(bank.perform(senders[n % 2], op) for n, op in enumerate(ops))
                )
            finally:
                await asyncio.gather(*(sender.aclose() for sender in senders))
            assert all(op.acknowledged for op in done), [op.attempts for op in done]
            await asyncio.wait_for(reader, SETTLE_TIMEOUT)
            await response.aclose()
        # The account opened empty at version 1; its deposits are versions 2 to 61.
        assert ids == list(range(2, 62))
