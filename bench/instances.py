"""12. HTTP deposits over 1, 2 and 3 ``balance serve`` instances of one deployment (Kafka +
Mongo, one topic of 6 partitions, one broker), under wrk as in measure 1.

``cluster_accounts`` accounts (1,000) are opened in-process on the topic (then that process
stops), each with its own owner and token. Each round runs the instance counts in turn (growing
from 1 in even rounds, shrinking from 3 in odd ones): instances are started or stopped until that
many run, the run waits until they own every partition exactly once, then wrk loads them: one
wrk per instance, ``wrk_connections`` (64) split evenly between them, every wrk on every
account at random, as a load balancer in front of them would spread clients. A deposit that
lands on an instance that does not write the account's partition is forwarded over HTTP to the
one that does; with n instances about (n - 1) / n of them are.

Reported per instance count: the requests answered per second (all wrk runs together), the
latency p50 / p99 over all requests (merged from each wrk run's percentiles), the share of
requests forwarded (the instances' ``balance_forwarded_requests_total{outcome="answered"}`` read
from ``/metrics`` before and after), and the instances' CPU per request (all of them together).
Any failed request makes the row a miss. Everything, the broker, FerretDB and wrk included,
shares the host's cores.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Final

import httpx

from bench.backends import Backend, kafka_mongo
from bench.cluster import Instance, cluster, ownership, settled
from bench.common import Outcome, Row, Sizes, by_round, median, run_async
from bench.http import accounts_files
from bench.scaling import (
    ScaleSizes,
    merged_percentile,
    not_measured,
    on_partitions,
    ratio,
    scale_sizes,
    share,
)
from bench.wrk import WrkResult, run_wrk, wrk_path
from handlers.accounts.account import account_stream
from plugins.kafka.partitioner import partition_for

__all__ = ["run"]

LABEL: Final = "12. HTTP deposits over instances, Kafka + Mongo"
# The key of a run in which every request goes to the instance that writes its stream.
TO_OWNER: Final = "-to-owner"


async def _wrk_over(
    targets: list[tuple[Instance, Path]], sizes: Sizes, seconds: int
) -> list[WrkResult]:
    """One wrk per (instance, accounts file) at once, the connections split evenly."""
    connections = max(1, sizes.wrk_connections // len(targets))
    threads = max(1, min(connections, sizes.wrk_threads // len(targets)))

    def load(instance: Instance, accounts: Path) -> WrkResult:
        return run_wrk(
            instance.url, accounts, seconds=seconds, connections=connections, threads=threads
        )

    return list(await asyncio.gather(*(asyncio.to_thread(load, *t) for t in targets)))


async def _measure(targets: list[tuple[Instance, Path]], sizes: Sizes) -> dict[str, Any]:
    instances = [instance for instance, _ in targets]
    await _wrk_over(targets, sizes, sizes.wrk_warmup_seconds)
    async with httpx.AsyncClient(timeout=10.0) as client:
        before = [await instance.forwarded(client) for instance in instances]
        cpu = [instance.cpu_seconds() for instance in instances]
        results = await _wrk_over(targets, sizes, sizes.wrk_seconds)
        after = [await instance.forwarded(client) for instance in instances]
    used = sum(instance.cpu_seconds() for instance in instances) - sum(cpu)
    requests = sum(result.requests for result in results)
    forwarded = sum(after) - sum(before)
    runs = [(result.requests, result.quantiles_ms) for result in results]
    return {
        "instances": len(instances),
        "requests": requests,
        "per_s": sum(result.per_s for result in results),
        "p50_ms": merged_percentile(runs, 50),
        "p99_ms": merged_percentile(runs, 99),
        "errors": sum(result.errors for result in results),
        "errors_by_kind": dict(sum((Counter(r.errors_by_kind) for r in results), Counter())),
        "forwarded": forwarded,
        "forwarded_share": share(forwarded, requests),
        "cpu_us_per_request": 1e6 * used / requests if requests else 0.0,
        "by_instance": [result.as_dict() for result in results],
    }


async def _owners_files(
    instances: list[Instance], lines: list[str], partitions: int, folder: Path
) -> list[tuple[Instance, Path]]:
    """Each instance with a file of the accounts whose partition it writes now."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        owned = [await ownership(instance, client) for instance in instances]
    return [
        (instance, _accounts_file(folder / f"{instance.name}.accounts", lines, mine, partitions))
        for instance, mine in zip(instances, owned, strict=True)
    ]


def _accounts_file(path: Path, lines: list[str], owned: dict[int, bool], partitions: int) -> Path:
    """The "<id> <token>" lines of the accounts in the ``owned`` partitions, written to ``path``."""
    with path.open("w") as out:
        for line in lines:
            if partition_for(account_stream(line.partition(" ")[0]), partitions) in owned:
                out.write(f"{line}\n")
    return path


async def _rounds(
    backend: Backend, root: Path, accounts: Path, sizes: Sizes, scale: ScaleSizes
) -> list[dict[str, dict[str, Any]]]:
    rounds: list[dict[str, dict[str, Any]]] = []
    partitions = scale.cluster_partitions
    lines = await asyncio.to_thread(lambda: accounts.read_text().splitlines())
    async with cluster(backend, root, max(scale.instances), partitions) as instances:
        for number in range(sizes.rounds):
            counts = scale.instances if number % 2 == 0 else tuple(reversed(scale.instances))
            figures: dict[str, dict[str, Any]] = {}
            for count in counts:
                await asyncio.gather(*(i.stop() for i in instances[count:] if i.running))
                await asyncio.gather(*(i.start() for i in instances[:count] if not i.running))
                await settled(instances, partitions)
                running = instances[:count]
                spread = [(instance, accounts) for instance in running]
                figures[str(count)] = await _measure(spread, sizes)
                if count > 1:
                    owners = await _owners_files(running, lines, partitions, root)
                    figures[f"{count}{TO_OWNER}"] = await _measure(owners, sizes)
            rounds.append(figures)
    return rounds


def _text(figures: dict[str, Any]) -> str:
    return (
        f"{figures['per_s']:,.0f} req/s, p50 {figures['p50_ms']:.1f} ms, "
        f"p99 {figures['p99_ms']:.1f} ms"
    )


def _note(figures: dict[str, Any], rounds: list[dict[str, dict[str, Any]]], key: str) -> str:
    note = (
        f"{figures['forwarded_share']:.1%} forwarded; instances' CPU per request "
        f"{figures['cpu_us_per_request']:,.0f} µs; req/s by round "
        f"{by_round((r[key]['per_s'] for r in rounds), '{:,.0f}')}"
    )
    if figures["errors"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(figures["errors_by_kind"].items()))
        note += f"; {figures['errors']} failed requests ({kinds})"
    return note


def run(sizes: Sizes, backend: Backend | None = None) -> Outcome:
    backend = backend or kafka_mongo()
    scale = scale_sizes(sizes.quick)
    reason = backend.missing or (None if wrk_path() else "wrk is not installed")
    if reason:
        return Outcome([not_measured(LABEL, "info", reason)], {"skipped": reason})
    partitions = scale.cluster_partitions
    own = on_partitions(backend, partitions).own_names("bench.instances")
    with tempfile.TemporaryDirectory(prefix="bench-instances-") as tmp:
        root = Path(tmp)
        with accounts_files([own], root, scale.cluster_accounts) as files:
            accounts = files[own.key]
            rounds = run_async(_rounds(own, root / "cluster", accounts, sizes, scale))
    figures: dict[str, Any] = {"rounds": rounds, "partitions": partitions}
    first = str(scale.instances[0])
    rows = []
    for key in rounds[0]:
        summary = {
            name: median(r[key][name] for r in rounds)
            for name in ("per_s", "p50_ms", "p99_ms", "forwarded_share", "cpu_us_per_request")
        }
        summary["errors"] = sum(r[key]["errors"] for r in rounds)
        kinds = sum((Counter(r[key]["errors_by_kind"]) for r in rounds), Counter())
        summary["errors_by_kind"] = dict(kinds)
        summary["ratio"] = median(ratio(r[key]["per_s"], r[first]["per_s"]) for r in rounds)
        figures[key] = summary
    for key in sorted(rounds[0]):
        summary = figures[key]
        rows.append(
            Row(
                f"{LABEL}: {_label(key)}",
                "" if key == first else f"{figures[first]['per_s']:,.0f} req/s ({_label(first)})",
                _text(summary),
                f"{summary['ratio']:.2f}x",
                "reference" if key == first else "info",
                "miss" if summary["errors"] else "info",
                _note(summary, rounds, key),
            )
        )
    return Outcome(rows, figures)


def _label(key: str) -> str:
    count = key.partition(TO_OWNER)[0]
    plural = "s" if int(count) > 1 else ""
    if key != count:
        return f"{count} instance{plural}, each request sent to its stream's owner"
    return f"{count} instance{plural}" + (", requests spread over them" if plural else "")
