"""10. Parallel partitions: in-process deposits on the Kafka store, one instance owning all the
partitions of a topic of 1, 3 and then 6 partitions.

Each partition of the store has its own writer (a thread with its own transactional producer,
group commit into Kafka transactions). With one partition, one writer's cycle (produce, flush,
commit, index write) bounds the rate; with several, their cycles overlap. Each contender starts
on a topic of its own (and a database, unused: the projector is off, as in measures 2 and 8)
with ``partition_accounts`` accounts (1,200: their streams spread over the partitions by the
store's partitioner), then ``partition_deposits`` deposits on them by one seeded random sequence,
``in_flight_per_partition`` (64) at once per partition, so that every writer has as much queued
as the one-partition writer has. Each deposit is a load + decide + append of one event. In every
round the three contenders run one after another, in alternating order from round to round;
ratios are taken within a round. Every deposit is checked to have landed.

Beside each rate, the CPU it took: this process's cores (its CPU time over the wall time), and
how many of the host's cores were busy meanwhile (from ``/proc/stat``: the broker, FerretDB and
anything else running on the host). A ratio below the target with the host's cores all busy is
a machine without the cores to run more writers, not writers that wait on each other.
"""

from __future__ import annotations

import random
import tempfile
import time
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


async def _deposits(settings: Settings, scale: ScaleSizes, partitions: int) -> dict[str, Any]:
    in_flight = scale.in_flight_per_partition * partitions
    async with app_on(settings.data_dir, settings=settings) as application:
        store = application.backends["event_store"]
        await taken_over(store, partitions)
        owners = [f"user-{i}" for i in range(scale.partition_accounts)]
        ids = await open_accounts(application, owners)
        spread = [0] * partitions
        for account_id in ids:
            spread[partition_for(account_stream(account_id), partitions)] += 1
        rng = random.Random(10)
        order = [rng.randrange(len(ids)) for _ in range(scale.partition_deposits)]
        jobs = deposit_jobs(application, ids, owners, order)
        broker = listener_pid(settings.require("kafka_bootstrap"))
        batches, broker_cpu = store.writer.batches, _cpu_seconds(broker)
        host, cpu, started = host_cpu(), time.process_time(), time.perf_counter()
        await run_concurrently(jobs, in_flight)
        elapsed = time.perf_counter() - started
        process_cores = (time.process_time() - cpu) / elapsed
        host_cores = host_cpu().cores_busy_since(host, cpu_count())
        broker_cores = (_cpu_seconds(broker) - broker_cpu) / elapsed
        transactions = store.writer.batches - batches
        fresh = Accounts(store, store)
        states = [await fresh.load(account_stream(ids[i])) for i in sorted(set(order))]
        assert sum(state.balance for state in states) == 100 * len(order)
    return {
        "per_s": len(order) / elapsed,
        "in_flight": in_flight,
        "accounts_per_partition": spread,
        "appends_per_transaction": len(order) / transactions if transactions else 0.0,
        # How long each writer took per transaction, on average: its cycle.
        "writer_cycle_ms": 1000 * elapsed * partitions / transactions if transactions else 0.0,
        "process_cores": process_cores,
        "broker_cores": broker_cores,
        "host_cores_busy": host_cores,
    }


def _cpu_seconds(pid: int | None) -> float:
    times = cpu_times(pid) if pid is not None else None
    return times.process if times is not None else 0.0


def _contender(backend: Backend, scale: ScaleSizes, partitions: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-partitions-{partitions}-") as tmp:
        own = on_partitions(backend, partitions).own_names(f"bench.partitions{partitions}")
        settings = own.settings(Path(tmp))
        try:
            return run_async(_deposits(settings, scale, partitions))
        finally:
            drop_own_names(settings)


def _rows(figures: dict[str, Any], scale: ScaleSizes) -> list[Row]:
    rounds = figures["rounds"]
    first, *others = scale.partitions
    reference = figures[str(first)]
    rows = [
        Row(
            f"{LABEL}: {first} partition{'s' if first > 1 else ''}",
            "",
            f"{reference['per_s']:,.0f} deposits/s",
            "1.00",
            "reference",
            "info",
            _cpu_note(reference),
        )
    ]
    for count in others:
        own = figures[str(count)]
        ratios = [r[str(count)]["per_s"] / r[str(first)]["per_s"] for r in rounds]
        judged = count == 6 and first == 1
        ok = median(ratios) >= TARGET_6_TO_1
        rows.append(
            Row(
                f"{LABEL}: {count} partitions",
                f"{reference['per_s']:,.0f}/s ({first} partition)",
                f"{own['per_s']:,.0f} deposits/s",
                f"{at_least_text(median(ratios))}x",
                f"≥ {TARGET_6_TO_1:g}x of 1 partition" if judged else "info",
                ("pass" if ok else "miss") if judged else "info",
                f"ratio by round {by_round(ratios, '{:.2f}')}; {_cpu_note(own)}",
            )
        )
    return rows


def _cpu_note(figures: dict[str, Any]) -> str:
    return (
        f"{figures['in_flight']} in flight, {figures['appends_per_transaction']:.0f} appends per "
        f"transaction, a writer's cycle {figures['writer_cycle_ms']:.1f} ms; CPU: this process "
        f"{figures['process_cores']:.2f} cores, the broker {figures['broker_cores']:.2f}, the "
        f"host {figures['host_cores_busy']:.2f} of {cpu_count()} busy"
    )


def run(sizes: Sizes, backend: Backend | None = None) -> Outcome:
    backend = backend or kafka_mongo()
    scale = scale_sizes(sizes.quick)
    if backend.missing:
        target = f"≥ {TARGET_6_TO_1:g}x of 1 partition"
        return Outcome([not_measured(LABEL, target, backend.missing)], {"skipped": backend.missing})
    rounds: list[dict[str, dict[str, Any]]] = []
    with server_runtime():
        for number in range(sizes.rounds):
            counts = scale.partitions if number % 2 == 0 else tuple(reversed(scale.partitions))
            rounds.append({str(n): _contender(backend, scale, n) for n in counts})
    figures: dict[str, Any] = {"rounds": rounds, "partitions": list(scale.partitions)}
    for count in scale.partitions:
        key = str(count)
        summary = {
            name: median(r[key][name] for r in rounds)
            for name in (
                "per_s",
                "appends_per_transaction",
                "writer_cycle_ms",
                "process_cores",
                "broker_cores",
                "host_cores_busy",
            )
        }
        summary["in_flight"] = rounds[0][key]["in_flight"]
        summary["accounts_per_partition"] = rounds[0][key]["accounts_per_partition"]
        figures[key] = summary
    first = str(scale.partitions[0])
    for count in scale.partitions[1:]:
        figures[f"ratio_{count}_to_{first}"] = median(
            ratio(r[str(count)]["per_s"], r[first]["per_s"]) for r in rounds
        )
    figures["workload"] = {
        "accounts": scale.partition_accounts,
        "deposits": scale.partition_deposits,
        "in_flight_per_partition": scale.in_flight_per_partition,
    }
    return Outcome(_rows(figures, scale), figures)
