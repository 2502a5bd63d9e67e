"""10. Parallel partitions: in-process deposits on the Kafka store, one instance owning all the
partitions of a topic of 1, 3 and then 6 partitions, in two configurations.

Each partition of the store has its own writer (a thread with its own transactional producer,
group commit into Kafka transactions). Each contender starts on a topic of its own (and a
database, unused: the projector is off, as in measures 2 and 8) with ``partition_accounts``
accounts (1,200: their streams spread over the partitions by the store's partitioner), then
runs two loads on them, each by one seeded random sequence of deposits (a load + decide +
append of one event), in alternating order from round to round:

- **commit-bound**: ``commit_bound_deposits`` (6,000) deposits, ``commit_bound_in_flight`` (4)
  per partition at once (on average: drawn at random over all the accounts). A partition's
  rate is its few appends per transaction over its writer's commit round trip, far below what
  the process's CPU allows at one partition: this is where partitions committing in parallel
  show, and where the 6:1 target is judged.
- **CPU-bound**: ``partition_deposits`` (30,000) deposits, ``in_flight_per_partition`` (64)
  per partition, so that every writer has as much queued as the one-partition writer has. Group
  commit then packs dozens of appends per transaction and one partition already keeps this
  process's event loop busy: more partitions can only add writers' round trips, not CPU, and
  on 2 shared cores the rate cannot grow with them. Reported for information.

In every round the three contenders run one after another, in alternating order; ratios are
taken within a round. Every deposit is checked to have landed.

Beside each rate, the CPU it took: this process's cores (its CPU time over the wall time), and
how many of the host's cores were busy meanwhile (from ``/proc/stat``: the broker, FerretDB and
anything else running on the host). A ratio below the target with the host's cores all busy is
a machine without the cores to run more writers, not writers that wait on each other.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from bench.backends import Backend, drop_own_names, kafka_mongo
from bench.common import (
    Outcome,
    Row,
    Sizes,
    app_on,
    at_least_text,
    by_round,
    cpu_count,
    deposit_jobs,
    median,
    open_accounts,
    run_async,
    run_concurrently,
    server_runtime,
)
from bench.scaling import (
    ScaleSizes,
    host_cpu,
    listener_pid,
    not_measured,
    on_partitions,
    ratio,
    scale_sizes,
    taken_over,
)
from bench.servers import cpu_times
from core.config import Settings
from handlers.accounts.account import account_stream
from handlers.accounts.repositories import Accounts
from plugins.kafka.partitioner import partition_for

__all__ = ["run"]

TARGET_6_TO_1: Final = 2.5
LABEL: Final = "10. parallel partitions, Kafka, one instance"


# The two loads: (key, deposits in flight per partition, deposits) from the workload sizes.
COMMIT_BOUND: Final = "commit_bound"
CPU_BOUND: Final = "cpu_bound"


def _loads(scale: ScaleSizes) -> list[tuple[str, int, int]]:
    return [
        (COMMIT_BOUND, scale.commit_bound_in_flight, scale.commit_bound_deposits),
        (CPU_BOUND, scale.in_flight_per_partition, scale.partition_deposits),
    ]


async def _deposits(
    settings: Settings, scale: ScaleSizes, partitions: int, loads: list[tuple[str, int, int]]
) -> dict[str, dict[str, Any]]:
    async with app_on(settings.data_dir, settings=settings) as application:
        store = application.backends["event_store"]
        await taken_over(store, partitions)
        owners = [f"user-{i}" for i in range(scale.partition_accounts)]
        ids = await open_accounts(application, owners)
        spread = [0] * partitions
        for account_id in ids:
            spread[partition_for(account_stream(account_id), partitions)] += 1
        broker = listener_pid(settings.require("kafka_bootstrap"))
        figures: dict[str, dict[str, Any]] = {}
        touched: set[int] = set()
        for key, per_partition, deposits in loads:
            rng = random.Random(10)
            order = [rng.randrange(len(ids)) for _ in range(deposits)]
            touched.update(order)
            jobs = deposit_jobs(application, ids, owners, order)
            figures[key] = await _load(store, broker, jobs, partitions, per_partition)
            figures[key]["accounts_per_partition"] = spread
        fresh = Accounts(store, store)
        states = [await fresh.load(account_stream(ids[i])) for i in sorted(touched)]
        landed = sum(state.balance for state in states)
        assert landed == 100 * sum(deposits for _, _, deposits in loads)
    return figures


async def _load(
    store: Any,
    broker: int | None,
    jobs: list[Callable[[], Awaitable[Any]]],
    partitions: int,
    per_partition: int,
) -> dict[str, Any]:
    """Run ``jobs``, ``per_partition`` at once for each of the ``partitions``; the rate and what
    it cost."""
    in_flight = per_partition * partitions
    batches, broker_cpu = store.writer.batches, _cpu_seconds(broker)
    host, cpu, started = host_cpu(), time.process_time(), time.perf_counter()
    await run_concurrently(jobs, in_flight)
    elapsed = time.perf_counter() - started
    transactions = store.writer.batches - batches
    return {
        "per_s": len(jobs) / elapsed,
        "in_flight": in_flight,
        "appends_per_transaction": len(jobs) / transactions if transactions else 0.0,
        # How long each writer took per transaction, on average: its cycle.
        "writer_cycle_ms": 1000 * elapsed * partitions / transactions if transactions else 0.0,
        "process_cores": (time.process_time() - cpu) / elapsed,
        "broker_cores": (_cpu_seconds(broker) - broker_cpu) / elapsed,
        "host_cores_busy": host_cpu().cores_busy_since(host, cpu_count()),
    }


def _cpu_seconds(pid: int | None) -> float:
    times = cpu_times(pid) if pid is not None else None
    return times.process if times is not None else 0.0


def _contender(
    backend: Backend, scale: ScaleSizes, partitions: int, loads: list[tuple[str, int, int]]
) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix=f"bench-partitions-{partitions}-") as tmp:
        own = on_partitions(backend, partitions).own_names(f"bench.partitions{partitions}")
        settings = own.settings(Path(tmp))
        try:
            return run_async(_deposits(settings, scale, partitions, loads))
        finally:
            drop_own_names(settings)


_TITLES: Final = {
    COMMIT_BOUND: "commit-bound ({} in flight per partition)",
    CPU_BOUND: "CPU-bound ({} in flight per partition)",
}
_CPU_BOUND_NOTE: Final = (
    "info: one partition already keeps the event loop busy, so on 2 shared cores more "
    "partitions add writers' round trips, not CPU"
)


def _rows(figures: dict[str, Any], scale: ScaleSizes, key: str, per_partition: int) -> list[Row]:
    rounds = [r[key] for r in figures["rounds"]]
    first, *others = scale.partitions
    by_count = figures[key]
    reference = by_count[str(first)]
    label = f"{LABEL}, {_TITLES[key].format(per_partition)}"
    judged_load = key == COMMIT_BOUND
    rows = [
        Row(
            f"{label}: {first} partition{'s' if first > 1 else ''}",
            "",
            f"{reference['per_s']:,.0f} deposits/s",
            "1.00",
            "reference",
            "info",
            _cpu_note(reference),
        )
    ]
    for count in others:
        own = by_count[str(count)]
        ratios = [r[str(count)]["per_s"] / r[str(first)]["per_s"] for r in rounds]
        judged = judged_load and count == 6 and first == 1
        ok = median(ratios) >= TARGET_6_TO_1
        note = f"ratio by round {by_round(ratios, '{:.2f}')}; {_cpu_note(own)}"
        if not judged_load:
            note = f"{_CPU_BOUND_NOTE}; {note}"
        rows.append(
            Row(
                f"{label}: {count} partitions",
                f"{reference['per_s']:,.0f}/s ({first} partition)",
                f"{own['per_s']:,.0f} deposits/s",
                f"{at_least_text(median(ratios))}x",
                f"≥ {TARGET_6_TO_1:g}x of 1 partition" if judged else "info",
                ("pass" if ok else "miss") if judged else "info",
                note,
            )
        )
    return rows


def _cpu_note(figures: dict[str, Any]) -> str:
    return (
        f"{figures['in_flight']} in flight, {figures['appends_per_transaction']:.1f} appends per "
        f"transaction, a writer's cycle {figures['writer_cycle_ms']:.1f} ms; CPU: this process "
        f"{figures['process_cores']:.2f} cores, the broker {figures['broker_cores']:.2f}, the "
        f"host {figures['host_cores_busy']:.2f} of {cpu_count()} busy"
    )


def _summary(rounds: list[dict[str, dict[str, Any]]], key: str, count: int) -> dict[str, Any]:
    """The median of each figure of ``count`` partitions under load ``key`` over the rounds."""
    runs = [r[key][str(count)] for r in rounds]
    summary: dict[str, Any] = {
        name: median(run[name] for run in runs)
        for name in (
            "per_s",
            "appends_per_transaction",
            "writer_cycle_ms",
            "process_cores",
            "broker_cores",
            "host_cores_busy",
        )
    }
    summary["in_flight"] = runs[0]["in_flight"]
    summary["accounts_per_partition"] = runs[0]["accounts_per_partition"]
    return summary


def run(sizes: Sizes, backend: Backend | None = None) -> Outcome:
    backend = backend or kafka_mongo()
    scale = scale_sizes(sizes.quick)
    if backend.missing:
        target = f"≥ {TARGET_6_TO_1:g}x of 1 partition"
        return Outcome([not_measured(LABEL, target, backend.missing)], {"skipped": backend.missing})
    loads = _loads(scale)
    # Each round: by load, by partition count, that contender's figures.
    rounds: list[dict[str, dict[str, Any]]] = []
    with server_runtime():
        for number in range(sizes.rounds):
            counts = scale.partitions if number % 2 == 0 else tuple(reversed(scale.partitions))
            ordered = loads if number % 2 == 0 else list(reversed(loads))
            by_count = {str(n): _contender(backend, scale, n, ordered) for n in counts}
            rounds.append({key: {n: by_count[n][key] for n in by_count} for key, _, _ in loads})
    figures: dict[str, Any] = {"rounds": rounds, "partitions": list(scale.partitions)}
    first = str(scale.partitions[0])
    for key, _, _ in loads:
        figures[key] = {str(n): _summary(rounds, key, n) for n in scale.partitions}
        for count in scale.partitions[1:]:
            figures[key][f"ratio_{count}_to_{first}"] = median(
                ratio(r[key][str(count)]["per_s"], r[key][first]["per_s"]) for r in rounds
            )
    figures["workload"] = {
        "accounts": scale.partition_accounts,
        "loads": {key: {"in_flight_per_partition": k, "deposits": n} for key, k, n in loads},
    }
    rows = [row for key, k, _ in loads for row in _rows(figures, scale, key, k)]
    return Outcome(rows, figures)
