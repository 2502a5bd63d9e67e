"""2. Event-store appends in-process, durable (``synchronous=FULL``): 1,000 accounts opened, then
20,000 deposits spread over them (one seeded random sequence, the same for every contender), each
deposit a load + decide + save.

Contenders, each on a fresh data directory, in turn within every round:
- ours, ``in_flight`` deposits at once through the mediator (how a server drives it: the SQLite
  writer then commits many appends per fsync, "group commit");
- ours, one deposit at a time (the library's own mode);
- the library, one at a time, without and with its aggregate cache;
- the library on ``library_threads`` threads, each owning a share of the accounts (so its
  optimistic check never conflicts), with its cache.

The rate is deposits per second over the deposit phase (opening is not timed). Our projector is
off, as the library has none. The target compares ours concurrent with the library's best.

Every contender runs under the interpreter settings ``balance serve`` applies (switch interval,
GC thresholds and a freeze of the objects alive at the start, ``bench.common.server_runtime``):
the library's rows as well as ours, since they share the process.
"""

from __future__ import annotations

import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import (
    Outcome,
    Row,
    Sizes,
    app_on,
    deposit_jobs,
    median,
    open_accounts,
    run_async,
    run_concurrently,
    server_runtime,
)
from bench.es_baseline import Bank, bank, synchronous_level
from handlers.accounts.repositories import Accounts

__all__ = ["run"]

TARGET_RATIO = 5.0


def _sequence(sizes: Sizes) -> list[int]:
    rng = random.Random(6)
    return [rng.randrange(sizes.accounts) for _ in range(sizes.deposits)]


async def _ours(data_dir: Path, sizes: Sizes, order: list[int], in_flight: int) -> float:
    async with app_on(data_dir) as application:
        owners = [f"user-{i}" for i in range(sizes.accounts)]
        ids = await open_accounts(application, owners)
        jobs = deposit_jobs(application, ids, owners, order)
        started = time.perf_counter()
        if in_flight == 1:
            for run_one in jobs:
                await run_one()
        else:
            await run_concurrently(jobs, in_flight)
        rate = len(order) / (time.perf_counter() - started)
        # Every deposit landed: the balances add up, read back through a fresh repository.
        store = application.backends["event_store"]
        fresh = Accounts(store, store)
        total = sum([(await fresh.load(f"account-{i}")).balance for i in ids])
        assert total == 100 * len(order), (total, len(order))
    return rate


def _library(db_file: Path, sizes: Sizes, order: list[int], cache: bool, threads: int) -> float:
    application: Bank = bank(db_file, cache)
    try:
        level = synchronous_level(application)
        assert level == 2, f"the library's connections run at synchronous={level}, not FULL"
        ids = [application.open_account(f"user-{i}") for i in range(sizes.accounts)]
        started = time.perf_counter()
        if threads == 1:
            for index in order:
                application.deposit(ids[index], 100)
        else:
            shares = [[ids[i] for i in order if i % threads == t] for t in range(threads)]

            def work(share: list[Any]) -> None:
                for account_id in share:
                    application.deposit(account_id, 100)

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(work, shares))
        rate = len(order) / (time.perf_counter() - started)
        total = sum(application.balance(account_id) for account_id in ids)
        assert total == 100 * len(order), (total, len(order))
    finally:
        application.close()
    return rate


def _round(sizes: Sizes, order: list[int], tmp: Path, number: int) -> dict[str, float]:
    base = tmp / f"round-{number}"
    threads = sizes.library_threads
    return {
        "ours_concurrent": run_async(_ours(base / "c", sizes, order, sizes.in_flight)),
        "ours_sequential": run_async(_ours(base / "s", sizes, order, 1)),
        "library_sequential": _library(base / "l.db", sizes, order, False, 1),
        "library_cached": _library(base / "lc.db", sizes, order, True, 1),
        f"library_{threads}_threads": _library(base / "lt.db", sizes, order, True, threads),
    }


def run(sizes: Sizes) -> Outcome:
    order = _sequence(sizes)
    with server_runtime(), tempfile.TemporaryDirectory(prefix="bench-appends-") as tmp:
        rounds = [_round(sizes, order, Path(tmp), n) for n in range(sizes.rounds)]
    rates = {key: median(r[key] for r in rounds) for key in rounds[0]}
    library_keys = [key for key in rounds[0] if key.startswith("library")]
    best = max(library_keys, key=lambda key: rates[key])
    headline = median(r["ours_concurrent"] / max(r[k] for k in library_keys) for r in rounds)
    sequential = median(r["ours_sequential"] / r["library_sequential"] for r in rounds)
    figures: dict[str, Any] = {
        "rates_per_s": rates,
        "library_best": best,
        "ratio_concurrent_to_library_best": headline,
        "ratio_sequential_to_library_sequential": sequential,
        "rounds": rounds,
        "workload": {
            "accounts": sizes.accounts,
            "deposits": sizes.deposits,
            "in_flight": sizes.in_flight,
        },
    }
    library = f"{rates[best]:,.0f}/s ({best.replace('library_', 'library, ')})"
    rows = [
        Row(
            f"2. appends in-process, ours {sizes.in_flight} in flight",
            library,
            f"{rates['ours_concurrent']:,.0f}/s",
            f"{headline:.1f}x",
            f"≥ {TARGET_RATIO:g}x the library",
            "pass" if headline >= TARGET_RATIO else "miss",
            "group commit: many appends per fsync",
        ),
        Row(
            "2. appends in-process, ours one at a time",
            f"{rates['library_sequential']:,.0f}/s (library, one at a time)",
            f"{rates['ours_sequential']:,.0f}/s",
            f"{sequential:.1f}x",
            "info (same mode as the library)",
            "info",
            "one fsync per deposit on both sides",
        ),
    ]
    return Outcome(rows, figures)
