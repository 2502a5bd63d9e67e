"""8. A hot account: ``in_flight`` clients (64 in a full run) depositing on ONE account, against
the same clients and the same number of deposits spread over ``accounts`` accounts (1,000), in
the same run, on each backend: in-process through the mediator, durable, projector off (the
write side alone, as measure 2).

Commands on one account take turns (a per-account lock), so without pipelining a hot account
runs at one commit per command while spread accounts share each commit. With a store that
queues appends (``PipelinedAppends``) a command gives up the account's turn once its append is
queued, and the next one decides on top of it, so one commit carries many appends of the same
account. The target: the hot account at ≥ 0.8x the spread rate.

Each contender starts on a fresh data directory (a topic and a database of its own on Kafka +
Mongo); in every round the hot run and the spread run alternate which goes first. Every deposit
is checked to have landed: the balances add up, read back through a fresh repository.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.backends import Backend, drop_own_names, each_backend
from bench.common import (
    Outcome,
    Row,
    Sizes,
    app_on,
    at_least_text,
    by_round,
    deposit_jobs,
    median,
    open_accounts,
    run_async,
    run_concurrently,
    server_runtime,
)
from core.config import Settings
from handlers.accounts.repositories import Accounts

__all__ = ["run"]

TARGET_RATIO = 0.8


async def _deposits(settings: Settings, sizes: Sizes, hot: bool) -> float:
    """Deposits/s with ``sizes.in_flight`` at once, all on one account or spread."""
    async with app_on(settings.data_dir, settings=settings) as application:
        owners = [f"user-{i}" for i in range(sizes.accounts)]
        ids = await open_accounts(application, owners)
        rng = random.Random(8)
        order = [0 if hot else rng.randrange(sizes.accounts) for _ in range(sizes.deposits)]
        jobs = deposit_jobs(application, ids, owners, order)
        started = time.perf_counter()
        await run_concurrently(jobs, sizes.in_flight)
        rate = len(order) / (time.perf_counter() - started)
        store = application.backends["event_store"]
        fresh = Accounts(store, store)
        touched = sorted(set(order))
        states = [await fresh.load(f"account-{ids[i]}") for i in touched]
        assert sum(state.balance for state in states) == 100 * len(order)
        assert sum(state.version - 1 for state in states) == len(order)  # opened at version 1
    return rate


def _contender(backend: Backend, sizes: Sizes, hot: bool) -> float:
    with tempfile.TemporaryDirectory(prefix=f"bench-hot-{backend.key}-") as tmp:
        settings = backend.own_names("bench.hot").settings(Path(tmp))
        try:
            return run_async(_deposits(settings, sizes, hot))
        finally:
            drop_own_names(settings)


def _measure(backend: Backend, sizes: Sizes) -> tuple[Row, dict[str, Any]]:
    rounds: list[dict[str, float]] = []
    with server_runtime():
        for number in range(sizes.rounds):
            first_hot = number % 2 == 0
            rates = {}
            for one_account in (first_hot, not first_hot):
                key = "hot" if one_account else "spread"
                rates[key] = _contender(backend, sizes, one_account)
            rounds.append(rates)
    hot = median(r["hot"] for r in rounds)
    spread = median(r["spread"] for r in rounds)
    ratio = median(r["hot"] / r["spread"] for r in rounds)
    figures: dict[str, Any] = {
        "hot_per_s": hot,
        "spread_per_s": spread,
        "ratio_hot_to_spread": ratio,
        "rounds": rounds,
        "workload": {
            "accounts": sizes.accounts,
            "deposits": sizes.deposits,
            "in_flight": sizes.in_flight,
        },
    }
    row = Row(
        f"8. hot account, {backend.label}",
        f"{spread:,.0f}/s (spread over {sizes.accounts:,} accounts)",
        f"{hot:,.0f}/s (one account)",
        f"{at_least_text(ratio)}x",
        f"≥ {TARGET_RATIO:g}x spread",
        "pass" if ratio >= TARGET_RATIO else "miss",
        f"{sizes.in_flight} clients in-process; ratio by round "
        f"{by_round((r['hot'] / r['spread'] for r in rounds), '{:.2f}')}",
    )
    return row, figures


def _not_measured(backend: Backend, reason: str) -> Row:
    return Row(
        f"8. hot account, {backend.label}",
        "", "", "", f"≥ {TARGET_RATIO:g}x spread", "not measured", reason,
    )  # fmt: skip


def run(sizes: Sizes, backends: Sequence[Backend]) -> Outcome:
    return each_backend(backends, lambda backend: _measure(backend, sizes), _not_measured)
