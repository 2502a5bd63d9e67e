"""``python -m bench [--quick]``: every benchmark in one run, one after the other (never two at
once: they would share the two cores), then the report. ``bench/run`` is the way in: it prepares
the virtualenv and wrk first. Results go to ``$BENCH_OUT`` or ``bench/results``.

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

from bench import appends, feeds, hot, http, lag, latency, load, mediator, memory, report, warmup
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
)
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


def run(sizes: Sizes) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The measures, and the servers' warm-up that came before the first one using them."""
    backends = all_backends()
    measures: dict[str, dict[str, Any]] = {}
    measures["mediator"] = _attempt("mediator", lambda: mediator.run(sizes))
    measures["aggregate_load"] = _attempt("aggregate_load", lambda: load.run(sizes))
    measures["appends"] = _attempt("appends", lambda: appends.run(sizes))
    warmed = _warm(sizes, backends)
    measures["hot"] = _attempt("hot", lambda: hot.run(sizes, backends))
    rate = measures["appends"].get("figures", {}).get("rates_per_s", {}).get("ours_concurrent")
    measures["projection_lag"] = _attempt("projection_lag", lambda: lag.run(sizes, rate, backends))
    measures["rebuild"] = _attempt("rebuild", lambda: lag.run_rebuild(sizes))
    measures["memory"] = _attempt("memory", lambda: memory.run(sizes))
    measures["http"] = _attempt("http", lambda: http.run(sizes, backends))
    baseline = measures["http"].get("figures", {}).get("baseline", {}).get("per_s")
    measures["latency"] = _attempt("latency", lambda: latency.run(sizes, backends, baseline))
    measures["feeds"] = _attempt("feeds", lambda: feeds.run(sizes))
    assert set(measures) == set(MEASURES)
    return measures, warmed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tiny workload, for a smoke test")
    args = parser.parse_args(argv)
    sizes = sizes_for(args.quick)
    out = Path(os.environ.get("BENCH_OUT") or RESULTS)
    _say(f"{'quick' if args.quick else 'full'} run; results in {out}")
    started = time.perf_counter()
    measures, warmed = run(sizes)
    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "finished_at": report.finished_at(),
        "duration_s": time.perf_counter() - started,
        "rounds": sizes.rounds,
        "sizes": dataclasses.asdict(sizes),
        "machine": report.machine(),
        "rows": [row for key in MEASURES for row in measures[key]["rows"]],
        "measures": measures,
        "warmup": warmed,
    }
    report.write(out, result)
    if not args.quick and "BENCH_OUT" not in os.environ:
        report.update_readme(Path(__file__).resolve().parent / "README.md", result)
    _say(f"wrote {out}/latest.md, latest.json, latest.png")
    print(report.table(result["rows"]))
    return 1 if any(m.get("status") == "error" for m in measures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
