"""What the scale-out measures (10 to 13) share: their workload sizes, the Kafka + Mongo backend
on a topic of a given number of partitions, and the arithmetic of their figures (ratios, merged
latency percentiles, the forwarded share, how busy the host's cores were)."""

from __future__ import annotations

import asyncio
import math
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from bench.backends import Backend
from bench.common import Row
from core.diagnostics import Reporting

__all__ = [
    "HostCpu",
    "TAKEOVER_BOUND",
    "ScaleSizes",
    "forwarded_count",
    "host_cpu",
    "listener_pid",
    "listener_pid_in",
    "taken_over",
    "merged_percentile",
    "not_measured",
    "on_partitions",
    "ratio",
    "scale_out_rates",
    "scale_out_seconds",
    "scale_sizes",
    "share",
]


@dataclass(frozen=True, slots=True)
class ScaleSizes:
    """The workload of the scale-out measures in one run."""

    # 10. parallel partitions: topics of these many partitions, one instance owning them all
    partitions: tuple[int, ...]
    partition_accounts: int
    partition_deposits: int
    in_flight_per_partition: int
    # 10 again with a few appends in flight per partition: each partition's rate is bound by
    # its writer's commit round trips, not by this process's CPU
    commit_bound_in_flight: int
    commit_bound_deposits: int
    # 11-12. several instances on one topic of ``cluster_partitions`` partitions
    cluster_partitions: int
    instances: tuple[int, ...]
    cluster_accounts: int
    # 11. take-over: kills, and the light load beside them (clients, pause between requests)
    kills: int
    load_clients: int
    load_pause_s: float
    # 13. fresh-node start: the topic holds each of these many events, in streams of this length
    start_events: tuple[int, ...]
    start_stream_length: int


FULL: Final = ScaleSizes(
    partitions=(1, 3, 6),
    partition_accounts=1_200,
    partition_deposits=30_000,
    in_flight_per_partition=64,
    commit_bound_in_flight=4,
    commit_bound_deposits=6_000,
    cluster_partitions=6,
    instances=(1, 2, 3),
    cluster_accounts=1_000,
    kills=6,
    load_clients=4,
    load_pause_s=0.05,
    start_events=(10_000, 1_000_000),
    start_stream_length=100,
)

QUICK: Final = ScaleSizes(
    partitions=(1, 3),
    partition_accounts=60,
    partition_deposits=600,
    in_flight_per_partition=16,
    commit_bound_in_flight=4,
    commit_bound_deposits=200,
    cluster_partitions=6,
    instances=(1, 2),
    cluster_accounts=60,
    kills=1,
    load_clients=2,
    load_pause_s=0.05,
    start_events=(1_000, 5_000),
    start_stream_length=100,
)


# An upper bound on an instance taking its partitions over: it turns a hang into a failure.
TAKEOVER_BOUND: Final = 600.0


def scale_sizes(quick: bool) -> ScaleSizes:
    return QUICK if quick else FULL


async def taken_over(store: Reporting, partitions: int, bound: float = TAKEOVER_BOUND) -> float:
    """Wait until ``store`` (one instance, alone in its group) has taken every one of the
    topic's ``partitions`` over; the seconds waited."""
    started = time.perf_counter()
    while True:
        owned = store.report().partitions
        if len(owned) == partitions and all(owned.values()):
            return time.perf_counter() - started
        if time.perf_counter() - started > bound:
            raise RuntimeError(f"partitions never all taken over: {owned}")
        await asyncio.sleep(0.01)


def on_partitions(backend: Backend, partitions: int) -> Backend:
    """``backend`` creating its topic with ``partitions`` partitions (used on a new topic)."""
    return replace(backend, env={**backend.env, "BALANCE_KAFKA_PARTITIONS": str(partitions)})


def not_measured(measure: str, target: str, reason: str) -> Row:
    return Row(measure, "", "", "", target, "not measured", reason)


def ratio(measured: float, reference: float) -> float:
    """``measured / reference``; NaN when there is no reference to divide by."""
    return measured / reference if reference else math.nan


def share(part: int, whole: int) -> float:
    """``part`` as a share of ``whole`` (0 when there is no whole)."""
    return part / whole if whole else 0.0


def merged_percentile(runs: Sequence[tuple[int, Sequence[float]]], p: float) -> float:
    """The ``p``-th percentile of several load generators' latencies taken together, from each
    one's request count and its evenly spaced quantiles (``quantiles[k]`` is its
    ``100 * (k + 1) / len(quantiles)``-th percentile): every quantile stands for an equal share
    of its run's requests. The smallest value with at least p% of all requests at or below it;
    NaN when no run has a request."""
    points: list[tuple[float, float]] = []
    for requests, quantiles in runs:
        if requests and quantiles:
            weight = requests / len(quantiles)
            points.extend((value, weight) for value in quantiles)
    total = sum(weight for _, weight in points)
    if not total:
        return math.nan
    wanted = round(total * p / 100, 9)
    seen = 0.0
    for value, weight in sorted(points):
        seen += weight
        if round(seen, 9) >= wanted:
            return value
    return max(value for value, _ in points)


_FORWARDED: Final = re.compile(
    r'^balance_forwarded_requests_total\{outcome="answered"\} (\S+)$', re.MULTILINE
)


def forwarded_count(exposition: str) -> int:
    """The commands an instance forwarded to their stream's owner and got an answer for, from
    its ``/metrics`` text (0 when the counter is absent)."""
    found = _FORWARDED.search(exposition)
    return int(float(found.group(1))) if found else 0


@dataclass(frozen=True, slots=True)
class HostCpu:
    """The host's CPU time so far (``/proc/stat``'s first line), in clock ticks."""

    busy: int
    total: int

    def cores_busy_since(self, earlier: HostCpu, cores: int) -> float:
        """How many of ``cores`` were busy on average between ``earlier`` and this reading."""
        total = self.total - earlier.total
        return cores * (self.busy - earlier.busy) / total if total else 0.0


def host_cpu(stat: Path = Path("/proc/stat")) -> HostCpu:
    """user, nice, system, irq, softirq, steal count as busy; idle and iowait as not."""
    fields = [int(value) for value in stat.read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # guest and guest_nice (fields 9, 10) are already inside user and nice.
    total = sum(fields[:8])
    return HostCpu(total - idle, total)


def listener_pid_in(ss_output: str) -> int | None:
    """The pid ``ss -Htlnp`` shows for the socket listening on a port (None when it shows none,
    as for another user's process)."""
    found = re.search(r"pid=(\d+)", ss_output)
    return int(found.group(1)) if found else None


def listener_pid(address: str) -> int | None:
    """The process listening on ``host:port`` (the first of a comma-separated list), for its
    CPU time; None when it cannot be told (``ss`` missing, another user's process)."""
    port = address.split(",")[0].rpartition(":")[2]
    try:
        shown = subprocess.run(
            ["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return listener_pid_in(shown.stdout)


Bar = tuple[str, float, str]  # label, value, colour


def scale_out_rates(measures: Mapping[str, Mapping[str, Any]]) -> list[Bar]:
    """The plot's throughput bars of measures 10 and 12, from their figures by measure key."""
    bars: list[Bar] = []
    by_partitions = measures.get("partitions", {})
    for key, load in (("commit_bound", "commit-bound"), ("cpu_bound", "CPU-bound")):
        by_count = by_partitions.get(key, {})
        for count in by_partitions.get("partitions", []) if by_count else []:
            label = f"appends, {count} partitions, {load} (/s)"
            bars.append((label, by_count[str(count)]["per_s"], "tab:purple"))
    by_instances = measures.get("instances", {})
    for key in sorted(k for k in by_instances if k[:1].isdigit()):
        count, _, to_owner = key.partition("-")
        label = f"HTTP, {count} instances{', to owner' if to_owner else ''} (req/s)"
        bars.append((label, by_instances[key]["per_s"], "tab:purple"))
    return bars


def scale_out_seconds(measures: Mapping[str, Mapping[str, Any]]) -> list[Bar]:
    """The plot's bars of measures 11 and 13, in seconds."""
    bars: list[Bar] = []
    takeover = measures.get("takeover", {})
    if "p50_s" in takeover:
        bars.append(("session timeout", takeover["session_timeout_s"], "grey"))
        bars.append(("take-over p50", takeover["p50_s"], "tab:red"))
        bars.append(("take-over max", takeover["max_s"], "tab:red"))
    start = measures.get("fresh_start", {})
    for key in sorted((k for k in start if k.isdigit()), key=int):
        bars.append((f"fresh start, {int(key):,} events", start[key]["taken_over_s"], "tab:brown"))
    return bars
