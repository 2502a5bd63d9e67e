"""``python -m bench [--quick] [--only KEY,...]``: every benchmark in one run, one after the other
(never two at once: they would share the two cores), then the report. ``bench/run`` is the way
in: it prepares the virtualenv and wrk first. Results go to ``$BENCH_OUT`` or ``bench/results``:
``latest.{md,json,png}``, or ``only.{md,json,png}`` for the measures ``--only`` names.

Exit status 1 when a bench failed to run (its row then says why); a missed target is a result,
not a failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from bench import (
    appends,
    feeds,
    fresh_start,
    hot,
    http,
    instances,
    lag,
    latency,
    load,
    mediator,
    memory,
    partitions,
    report,
    takeover,
    warmup,
)
from bench.backends import Backend, all_backends
from bench.common import Outcome, Row, Sizes, sizes_for

# Every key the JSON's "measures" always has, measured or not, in the table's order.
MEASURES: Final = (
    "http",
    "latency",
    "appends",
    "hot",
    "aggregate_load",
    "mediator",
    "projection_lag",
    "rebuild",
    "memory",
    "feeds",
    "partitions",
    "instances",
    "takeover",
    "fresh_start",
)
# The measures that run on the servers the warm-up prepares (the others do not wait for it).
WARMED: Final = frozenset(MEASURES) - {"mediator", "aggregate_load", "appends"}
RESULTS: Final = Path(__file__).resolve().parent / "results"


def _say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _attempt(key: str, bench: Callable[[], Outcome]) -> dict[str, Any]:
    _say(f"{key} ...")
    started = time.perf_counter()
    try:
        outcome = bench()
    except Exception as error:
        traceback.print_exc()
        row = Row(key, "", "", "", "", "miss", f"the bench failed: {error!r}")
        return {"status": "error", "error": repr(error), "rows": report.rows_of([row])}
    seconds = time.perf_counter() - started
    for row in outcome.rows:
        _say(f"  {row.measure}: {row.measured} [{row.status}]")
    return {
        "status": "ok",
        "seconds": seconds,
        "rows": report.rows_of(outcome.rows),
        "figures": outcome.figures,
    }


def _warm(sizes: Sizes, backends: list[Backend]) -> dict[str, Any]:
    """The servers' warm-up (bench.warmup); a failure is reported and the measures still run."""
    if warmup.to_warm(sizes, backends):
        _say(f"warm-up of the servers ({sizes.server_warmup_seconds:g} s per backend) ...")
    try:
        return warmup.run(sizes, backends)
    except Exception as error:
        traceback.print_exc()
        return {"error": repr(error)}


def run(
    sizes: Sizes, only: frozenset[str] = frozenset(MEASURES)
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The measures (those in ``only``), and the servers' warm-up that came before the first one
    using them."""
    backends = all_backends()
    measures: dict[str, dict[str, Any]] = {}
    warmed: list[dict[str, Any]] = []  # the warm-up's figures, once it has run

    def attempt(key: str, bench: Callable[[], Outcome]) -> None:
        if key not in only:
            return
        if key in WARMED and not warmed:
            warmed.append(_warm(sizes, backends))
        measures[key] = _attempt(key, bench)

    def figure(key: str, *path: str) -> Any:
        found: Any = measures.get(key, {}).get("figures", {})
        for name in path:
            found = found.get(name, {})
        return found or None

    attempt("mediator", lambda: mediator.run(sizes))
    attempt("aggregate_load", lambda: load.run(sizes))
    attempt("appends", lambda: appends.run(sizes))
    attempt("hot", lambda: hot.run(sizes, backends))
    rate = figure("appends", "rates_per_s", "ours_concurrent")
    attempt("projection_lag", lambda: lag.run(sizes, rate, backends))
    attempt("rebuild", lambda: lag.run_rebuild(sizes))
    attempt("memory", lambda: memory.run(sizes))
    attempt("http", lambda: http.run(sizes, backends))
    baseline = figure("http", "baseline", "per_s")
    attempt("latency", lambda: latency.run(sizes, backends, baseline))
    attempt("feeds", lambda: feeds.run(sizes))
    kafka = next(backend for backend in backends if backend.key == "kafka_mongo")
    attempt("partitions", lambda: partitions.run(sizes, kafka))
    attempt("instances", lambda: instances.run(sizes, kafka))
    attempt("takeover", lambda: takeover.run(sizes, kafka))
    attempt("fresh_start", lambda: fresh_start.run(sizes, kafka))
    assert set(measures) == set(only)
    return measures, warmed[0] if warmed else {}


def _keys(text: str) -> frozenset[str]:
    keys = frozenset(key.strip() for key in text.split(",") if key.strip())
    unknown = keys - set(MEASURES)
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"unknown measures {sorted(unknown)}; known: {MEASURES}")
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tiny workload, for a smoke test")
    parser.add_argument(
        "--only",
        type=_keys,
        default=frozenset(MEASURES),
        metavar="KEY,...",
        help=f"only these measures, written to only.{{md,json,png}}: {', '.join(MEASURES)}",
    )
    args = parser.parse_args(argv)
    sizes = sizes_for(args.quick)
    out = Path(os.environ.get("BENCH_OUT") or RESULTS)
    partial = args.only != frozenset(MEASURES)
    name = "only" if partial else "latest"
    _say(f"{'quick' if args.quick else 'full'} run; results in {out}/{name}.*")
    started = time.perf_counter()
    measures, warmed = run(sizes, args.only)
    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "finished_at": report.finished_at(),
        "duration_s": time.perf_counter() - started,
        "rounds": sizes.rounds,
        "sizes": dataclasses.asdict(sizes),
        "machine": report.machine(),
        "rows": [row for key in MEASURES if key in measures for row in measures[key]["rows"]],
        "measures": measures,
        "warmup": warmed,
    }
    report.write(out, result, name)
    if not args.quick and not partial and "BENCH_OUT" not in os.environ:
        report.update_readme(Path(__file__).resolve().parent / "README.md", result)
    _say(f"wrote {out}/{name}.md, {name}.json, {name}.png")
    print(report.table(result["rows"]))
    return 1 if any(m.get("status") == "error" for m in measures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
