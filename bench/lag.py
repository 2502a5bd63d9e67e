"""5. Projection lag and rebuild rate, on the embedded default.

**Lag.** One application with its projector running, as in the API process. Deposits are sent
open-loop at a fixed rate (half the concurrent append rate measured by measure 2 in this run):
a new command starts every 1/rate seconds whether or not earlier ones finished. The lag of a
deposit is the time from its acknowledgement (``send`` returned: the append is committed) to the
end of the read-model transaction that made it visible. The read model's ``apply`` is wrapped on
the instance to stamp that moment. A projection that lands before the command's coroutine resumes
counts as 0.

**Rebuild.** A store of ``rebuild_events`` events (1,000 accounts x 100 events, built fast, see
``bench.streams``), then ``Application.projector.rebuild()`` into SQLite. The rate counts up to the
last batch applied; the wall time of the call (which also waits 0.5 s to see that nothing more
comes) is recorded beside it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    Outcome,
    Row,
    Sizes,
    app_on,
    ctx,
    median,
    open_accounts,
    run_async,
    run_concurrently,
)
from bench.streams import build_account
from handlers.accounts.readmodel import AccountChanged, ViewChange
from handlers.accounts.requests import Deposit
from handlers.accounts.services import Accounts

__all__ = ["run", "run_rebuild"]

TARGET_LAG_P99_MS = 50.0
TARGET_REBUILD_PER_S = 50_000.0
EVENTS_PER_ACCOUNT = 100
Key = tuple[str, int]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _lag_round(
    application: Any, ids: list[str], rate: float, seconds: float
) -> dict[str, float]:
    read_model = application.backends["read_model"]
    visible: dict[Key, float] = {}
    acks: dict[Key, float] = {}
    latencies: list[float] = []
    inner = read_model.apply

    async def stamped(projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        await inner(projection, changes, checkpoint)
        now = time.perf_counter()
        for change in changes:
            if isinstance(change, AccountChanged):
                visible[(change.account_id, change.version)] = now

    read_model.apply = stamped
    send = application.mediator.send
    contexts = [ctx(f"user-{i}") for i in range(len(ids))]

    async def deposit(index: int) -> None:
        account = index % len(ids)
        started = time.perf_counter()
        receipt = await send(Deposit(ids[account], "1.00", contexts[account]))
        acked = time.perf_counter()
        acks[(receipt.movement.account, receipt.movement.version)] = acked
        latencies.append(acked - started)

    loop = asyncio.get_running_loop()
    total = max(1, int(rate * seconds))
    tasks: set[asyncio.Task[None]] = set()
    launched = 0
    started = loop.time()
    while launched < total:
        due = min(total, int((loop.time() - started) * rate) + 1)
        while launched < due:
            task = asyncio.create_task(deposit(launched * 7919))  # spread over the accounts
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            launched += 1
        await asyncio.sleep(0.0005)
    sending = loop.time() - started
    while tasks:
        await asyncio.gather(*list(tasks))
    deadline = loop.time() + 30
    # A poll, not an Event: it only waits for the tail of the projection, off the measured path.
    while not all(key in visible for key in acks) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    del read_model.apply  # back to the class's method
    missing = sum(1 for key in acks if key not in visible)
    assert missing == 0, f"{missing} deposits never became visible within 30 s"
    lags = [max(0.0, visible[key] - acked) for key, acked in acks.items()]
    return {
        "offered_per_s": rate,
        "achieved_per_s": total / sending,
        "commands": total,
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "lag_max_ms": max(lags) * 1000,
        "command_p50_ms": percentile(latencies, 50) * 1000,
        "command_p99_ms": percentile(latencies, 99) * 1000,
    }


async def _lag(data_dir: Path, sizes: Sizes, rate: float) -> list[dict[str, float]]:
    async with app_on(data_dir, projector=True) as application:
        ids = await open_accounts(application, [f"user-{i}" for i in range(sizes.accounts)])
        await _lag_round(application, ids, rate, min(1.0, sizes.lag_seconds))  # warm-up
        return [
            await _lag_round(application, ids, rate, sizes.lag_seconds) for _ in range(sizes.rounds)
        ]


def run(sizes: Sizes, max_rate: float) -> Outcome:
    rate = max_rate / 2
    with tempfile.TemporaryDirectory(prefix="bench-lag-") as tmp:
        rounds = run_async(_lag(Path(tmp), sizes, rate))
    figures: dict[str, Any] = {key: median(r[key] for r in rounds) for key in rounds[0]}
    figures["rounds"] = rounds
    p50, p99 = figures["lag_p50_ms"], figures["lag_p99_ms"]
    rows = [
        Row(
            "5. projection lag, embedded (ack → visible)",
            f"{rate:,.0f} deposits/s offered (½ of measure 2)",
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            "",
            f"p99 ≤ {TARGET_LAG_P99_MS:g} ms",
            "pass" if p99 <= TARGET_LAG_P99_MS else "miss",
            f"achieved {figures['achieved_per_s']:,.0f}/s; command p99 "
            f"{figures['command_p99_ms']:.1f} ms",
        )
    ]
    return Outcome(rows, figures)


async def _rebuild(data_dir: Path, sizes: Sizes) -> list[dict[str, float]]:
    accounts_count = max(1, sizes.rebuild_events // EVENTS_PER_ACCOUNT)
    async with app_on(data_dir) as application:
        store = application.backends["event_store"]
        accounts = Accounts(store, store)
        jobs = [
            (lambda: build_account(accounts, EVENTS_PER_ACCOUNT)) for _ in range(accounts_count)
        ]
        await run_concurrently(jobs, 64)
        expected = accounts_count * EVENTS_PER_ACCOUNT
        rounds: list[dict[str, float]] = []
        for _ in range(sizes.rounds):
            applied = 0
            last = 0.0

            def progress(count: int) -> None:
                nonlocal applied, last
                applied += count
                last = time.perf_counter()

            started = time.perf_counter()
            total = await application.projector.rebuild(progress)
            wall = time.perf_counter() - started
            assert total == expected, (total, expected)
            rounds.append({"events": total, "per_s": total / (last - started), "wall_s": wall})
    return rounds


def run_rebuild(sizes: Sizes) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp:
        rounds = run_async(_rebuild(Path(tmp), sizes))
    rate = median(r["per_s"] for r in rounds)
    wall = median(r["wall_s"] for r in rounds)
    events = int(rounds[0]["events"])
    figures: dict[str, Any] = {"per_s": rate, "wall_s": wall, "events": events, "rounds": rounds}
    rows = [
        Row(
            f"5. projection rebuild into SQLite, {events:,} events",
            "",
            f"{rate:,.0f} events/s",
            "",
            f"≥ {TARGET_REBUILD_PER_S:,.0f} events/s",
            "pass" if rate >= TARGET_REBUILD_PER_S else "miss",
            f"wall time of rebuild() {wall:.2f} s, incl. its 50 ms end-of-stream wait",
        )
    ]
    return Outcome(rows, figures)
