"""5. Projection lag and rebuild rate.

**Lag.** One application with its projector running, as in the API process. Deposits are sent
open-loop at a fixed rate: half of the maximum that same configuration sustains, measured just
before on the same store (``in_flight`` deposits at once, projector on: the rate over the last
``MAX_SECONDS`` of ``MAX_WARMUP_SECONDS + MAX_SECONDS``). A store's writes cost more as it grows
(its indexes' pages spread out), so a maximum taken on an empty store would overstate what the
grown store of the rounds sustains. Measure 2's rate is the write side
alone: offering half of it to a process that also projects saturates it (command p99 in
seconds), and the lag then measures queueing, not the projection. A new command starts every
1/rate seconds whether or not earlier ones finished. The lag of a deposit is the time from its
acknowledgement (``send`` returned: the append is committed) to the end of the read-model
transaction that made it visible. The read model's method that the projector writes a batch
through (``apply_in``, into the live generation) is wrapped on the instance to stamp that
moment. A projection that lands before the command's coroutine resumes counts as 0. Kafka +
Mongo runs on a topic, transactional id, consumer-group prefix and database of its own (deleted
afterwards), from ``BALANCE_KAFKA_BOOTSTRAP`` and ``BALANCE_MONGO_URL``.

**Runtime settings.** These measures run in the bench's process; ``balance serve`` sets the
interpreter's switch interval and garbage-collector thresholds and freezes its start-up objects
(``api.runtime``). The lag and rebuild measures run with those same server settings, read the
same way, and put the previous ones back afterwards.

**Rebuild.** A store of ``rebuild_events`` events (1,000 accounts x 100 events, built fast, see
``bench.streams``), then ``Application.projector.rebuild()``: the blue/green rebuild into a new
SQLite generation (``handlers.accounts.rebuild``), each round a new generation replacing the
last. The rate counts up to the last batch applied; the wall time of the call (which also
writes the folded accounts, builds the indexes, syncs the file and switches) is recorded beside
it. When ``BALANCE_MONGO_URL`` names a server, the same rebuild runs from a SQLite event store
into new generations of the Mongo read model (a database of its own, dropped afterwards): the
rate at which the projection applies events into Mongo (info, no target); its wall time also
holds the wait before the old generation is dropped (three generation polls).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.backends import Backend, drop_own_names, each_backend
from bench.common import (
    Outcome,
    Row,
    Sizes,
    app_on,
    by_round,
    ctx,
    median,
    open_accounts,
    run_async,
    run_concurrently,
    server_runtime,
    sqlite_settings,
)
from bench.streams import build_account
from core.config import Settings
from handlers.accounts.generations import Generations
from handlers.accounts.messages import Deposit
from handlers.accounts.readmodel import AccountChanged, ViewChange
from handlers.accounts.repositories import Accounts

__all__ = ["full_speed", "run", "run_rebuild"]

TARGET_REBUILD_PER_S = 150_000.0
EVENTS_PER_ACCOUNT = 100
MAX_WARMUP_SECONDS = 5.0
MAX_SECONDS = 3.0
Key = tuple[str, int]


def _interval_note(seconds: float) -> str:
    return f"switch interval {seconds * 1000:g} ms and GC settings as `balance serve` sets them"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class _Visibility:
    """When each (account, version) became visible: the method through which the projector
    writes a batch, wrapped on the read model's instance to stamp the end of each batch, for as
    long as the ``with`` lasts. That is ``apply_in`` on a read model rebuilt blue/green
    (``Generations``: every backend the bench measures), ``apply`` on any other."""

    def __init__(self, read_model: Any) -> None:
        self._read_model = read_model
        self._method = "apply_in" if isinstance(read_model, Generations) else "apply"
        self.at: dict[Key, float] = {}

    def __enter__(self) -> _Visibility:
        inner = getattr(self._read_model, self._method)
        at = self.at

        async def stamped(*args: Any) -> None:
            await inner(*args)
            now = time.perf_counter()
            changes: Sequence[ViewChange] = args[
                -2
            ]  # (generation,) projection, changes, checkpoint
            for change in changes:
                if isinstance(change, AccountChanged):
                    at[(change.account_id, change.version)] = now

        setattr(self._read_model, self._method, stamped)
        return self

    def __exit__(self, *_: object) -> None:
        delattr(self._read_model, self._method)  # back to the class's method

    async def wait_for(self, keys: Iterable[Key], seconds: float = 30.0) -> None:
        # A poll, not an Event: it only waits for the tail of the projection, off the measured
        # path.
        keys = list(keys)
        deadline = asyncio.get_running_loop().time() + seconds
        while missing := sum(1 for key in keys if key not in self.at):
            assert asyncio.get_running_loop().time() < deadline, (
                f"{missing} deposits never became visible within {seconds:g} s"
            )
            await asyncio.sleep(0.01)


async def _lag_round(
    application: Any, ids: list[str], rate: float, seconds: float
) -> dict[str, float]:
    with _Visibility(application.backends["read_model"]) as visibility:
        return await _lag_round_watched(application, ids, rate, seconds, visibility)


async def _lag_round_watched(
    application: Any, ids: list[str], rate: float, seconds: float, visibility: _Visibility
) -> dict[str, float]:
    acks: dict[Key, float] = {}
    latencies: list[float] = []
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
    await visibility.wait_for(acks)
    lags = [max(0.0, visibility.at[key] - acked) for key, acked in acks.items()]
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


async def _max_rate(application: Any, ids: list[str], sizes: Sizes) -> tuple[float, int]:
    """Deposits/s with ``in_flight`` at once and the projector running: the rate over the last
    ``MAX_SECONDS`` of ``MAX_WARMUP_SECONDS + MAX_SECONDS``, and the deposits made in all. The
    first seconds warm the process (and a broker's JVM) up and grow the store to the size the lag
    is then measured on; a maximum taken on an empty store overstates what a grown one sustains.
    Returns once the projection has caught up with every deposit."""
    with _Visibility(application.backends["read_model"]) as visibility:
        warmup, measured = (0.5, 0.5) if sizes.quick else (MAX_WARMUP_SECONDS, MAX_SECONDS)
        rate, acked, done = await full_speed(application, ids, sizes.in_flight, warmup, measured)
        await visibility.wait_for(acked.items(), seconds=120.0)
    return rate, done


async def full_speed(
    application: Any, ids: list[str], in_flight: int, warmup: float, measured: float
) -> tuple[float, dict[str, int], int]:
    """Deposits on ``ids`` (opened for owners ``user-<i>``), ``in_flight`` at once, for
    ``warmup + measured`` seconds: the rate over the last ``measured`` seconds, each account's
    last acknowledged version, and the deposits made in all."""
    send = application.mediator.send
    contexts = [ctx(f"user-{i}") for i in range(len(ids))]
    acked: dict[str, int] = {}
    done = 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    window = started + warmup
    end = window + measured
    at_window: int | None = None  # deposits done when the measured window opened

    async def worker(offset: int) -> None:
        nonlocal done, at_window
        index = offset
        while (now := loop.time()) < end:
            if now >= window and at_window is None:
                at_window = done
            account = index % len(ids)
            receipt = await send(Deposit(ids[account], "1.00", contexts[account]))
            acked[receipt.movement.account] = receipt.movement.version
            done += 1
            index += 7919

    await asyncio.gather(*(worker(i) for i in range(in_flight)))
    return (done - (at_window or 0)) / (loop.time() - window), acked, done


async def _lag(settings: Settings, sizes: Sizes) -> tuple[float, int, list[dict[str, float]]]:
    """On one store: the maximum (which also grows the store), then a warm-up and ``rounds``
    rounds at half of it. Returns the maximum, the deposits it made, and the rounds."""
    async with app_on(settings.data_dir, projector=True, settings=settings) as application:
        ids = await open_accounts(application, [f"user-{i}" for i in range(sizes.accounts)])
        max_rate, grown = await _max_rate(application, ids, sizes)
        rate = max_rate / 2
        await _lag_round(application, ids, rate, min(1.0, sizes.lag_seconds))  # warm-up
        rounds = [
            await _lag_round(application, ids, rate, sizes.lag_seconds) for _ in range(sizes.rounds)
        ]
        return max_rate, grown, rounds


def _summary(rounds: list[dict[str, float]]) -> dict[str, Any]:
    figures: dict[str, Any] = {key: median(r[key] for r in rounds) for key in rounds[0]}
    figures["rounds"] = rounds
    return figures


def _row(label: str, offered: str, figures: dict[str, Any], target: float, note: str) -> Row:
    p50, p99 = figures["lag_p50_ms"], figures["lag_p99_ms"]
    return Row(
        f"5. projection lag, {label} (ack → visible)",
        offered,
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
        "",
        f"p99 ≤ {target:g} ms",
        "pass" if p99 <= target else "miss",
        f"achieved {figures['achieved_per_s']:,.0f}/s; command p99 "
        f"{figures['command_p99_ms']:.1f} ms; lag p99 by round "
        f"{by_round(r['lag_p99_ms'] for r in figures.get('rounds', []))} ms; {note}",
    )


def _not_measured(backend: Backend, reason: str) -> Row:
    return Row(
        f"5. projection lag, {backend.label}",
        "", "", "", f"p99 ≤ {backend.lag_p99_ms:g} ms", "not measured", reason,
    )  # fmt: skip


def _measure(
    sizes: Sizes, backend: Backend, write_only: float | None
) -> tuple[Row, dict[str, Any]]:
    """Half the maximum with the projector on, then the lag at that rate; ``write_only`` is
    measure 2's rate (projector off), shown beside it for the embedded backend."""
    with (
        server_runtime() as interval,
        tempfile.TemporaryDirectory(prefix=f"bench-lag-{backend.key}-") as tmp,
    ):
        settings = backend.own_names("bench.lag").settings(Path(tmp))
        try:
            max_rate, grown, rounds = run_async(_lag(settings, sizes))
        finally:
            drop_own_names(settings)
        figures = _summary(rounds)
        rate = max_rate / 2
    figures |= {
        "max_append_per_s": max_rate,
        "deposits_before_rounds": grown,
        "switch_interval_s": interval,
    }
    offered = (
        f"{rate:,.0f} deposits/s offered (½ of its own {max_rate:,.0f}/s with the projector on, "
        f"{sizes.in_flight} in flight, on the same store after {grown:,} deposits"
    )
    if write_only:
        figures["write_only_per_s"] = write_only
        offered += f"; {write_only:,.0f}/s without it, measure 2"
    row = _row(backend.label, offered + ")", figures, backend.lag_p99_ms, _interval_note(interval))
    return row, figures


def run(sizes: Sizes, write_only: float | None, backends: Sequence[Backend]) -> Outcome:
    """The lag on every backend that can be measured in this run (``write_only``: measure 2's
    rate, shown beside the embedded one)."""

    def measure(backend: Backend) -> tuple[Row, dict[str, Any]]:
        return _measure(sizes, backend, write_only if backend.key == "embedded" else None)

    return each_backend(backends, measure, _not_measured)


async def _rebuild(
    data_dir: Path, sizes: Sizes, settings: Settings | None = None
) -> list[dict[str, float]]:
    accounts_count = max(1, sizes.rebuild_events // EVENTS_PER_ACCOUNT)
    async with app_on(data_dir, settings=settings) as application:
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

            def progress(count: int, total: int | None) -> None:
                nonlocal applied, last
                applied = count
                last = time.perf_counter()

            started = time.perf_counter()
            total = await application.projector.rebuild(progress)
            wall = time.perf_counter() - started
            assert total == expected, (total, expected)
            rounds.append({"events": total, "per_s": total / (last - started), "wall_s": wall})
    return rounds


def _rebuild_row(into: str, rounds: list[dict[str, float]], interval: float) -> Row:
    rate = median(r["per_s"] for r in rounds)
    wall = median(r["wall_s"] for r in rounds)
    target = TARGET_REBUILD_PER_S if into == "SQLite" else None
    return Row(
        f"5. projection rebuild into {into}, {int(rounds[0]['events']):,} events",
        "",
        f"{rate:,.0f} events/s",
        "",
        f"≥ {target:,.0f} events/s" if target else "info",
        ("pass" if rate >= target else "miss") if target else "info",
        f"wall time of rebuild() {wall:.2f} s, incl. its switch; " + _interval_note(interval),
    )


def _rebuild_into_mongo(sizes: Sizes, url: str) -> list[dict[str, float]]:
    """The same rebuild from a SQLite event store into the Mongo read model: the rate at which
    the projection applies events into Mongo, in a database of its own, dropped afterwards."""
    from pymongo import MongoClient

    database = f"bench_rebuild_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-mongo-") as tmp:
        base = sqlite_settings(Path(tmp), mongo_url=url, mongo_database=database)
        try:
            return run_async(_rebuild(Path(tmp), sizes, replace(base, read_model="mongo")))
        finally:
            client: MongoClient[dict[str, Any]]
            with MongoClient(url, serverSelectionTimeoutMS=3000) as client:
                client.drop_database(database)


def run_rebuild(sizes: Sizes) -> Outcome:
    """The rebuild into SQLite, and into Mongo when ``BALANCE_MONGO_URL`` names a server."""
    with (
        server_runtime() as interval,
        tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp,
    ):
        rounds = run_async(_rebuild(Path(tmp), sizes))
        figures: dict[str, Any] = {
            "per_s": median(r["per_s"] for r in rounds),
            "wall_s": median(r["wall_s"] for r in rounds),
            "events": int(rounds[0]["events"]),
            "rounds": rounds,
            "switch_interval_s": interval,
        }
        rows = [_rebuild_row("SQLite", rounds, interval)]
        url = os.environ.get("BALANCE_MONGO_URL")
        wanted = os.environ.get("BENCH_BACKENDS", "kafka_mongo")
        if not url or "kafka_mongo" not in wanted:
            reason = "BALANCE_MONGO_URL not set" if not url else "left out by BENCH_BACKENDS"
            rows.append(
                Row("5. projection rebuild into Mongo", "", "", "", "info", "not measured", reason)
            )
        else:
            try:
                mongo_rounds = _rebuild_into_mongo(sizes, url)
            except Exception as error:  # the SQLite row still stands; this one says why
                traceback.print_exc()
                figures["mongo"] = {"error": repr(error)}
                failed = f"the bench failed: {error!r}"
                rows.append(
                    Row("5. projection rebuild into Mongo", "", "", "", "info", "miss", failed)
                )
            else:
                figures["mongo"] = {
                    "per_s": median(r["per_s"] for r in mongo_rounds),
                    "rounds": mongo_rounds,
                }
                rows.append(_rebuild_row("Mongo", mongo_rounds, interval))
    return Outcome(rows, figures)
