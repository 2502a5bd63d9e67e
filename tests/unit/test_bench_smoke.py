"""Smoke test of the benchmark command: ``bench/run --quick`` starts, runs every bench on a tiny
workload (seconds) and writes its three files. It checks that the command works, not the figures:
no benchmark is measured inside the test suite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from bench.__main__ import MEASURES

ROOT = Path(__file__).resolve().parents[2]
STATUSES = {"pass", "miss", "info", "not measured"}


def test_quick_bench_writes_the_table_the_json_and_the_plot(tmp_path: Path) -> None:
    # Only the embedded backend: Kafka + Mongo (when the suite has started them) belong to the
    # full run, not to a smoke test.
    env = {**os.environ, "BENCH_OUT": str(tmp_path), "BENCH_BACKENDS": "embedded"}
    done = subprocess.run(
        [str(ROOT / "bench" / "run"), "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG")
    table = (tmp_path / "latest.md").read_text()
    assert "| measure | baseline | measured | ratio | target | result | notes |" in table

    result = json.loads((tmp_path / "latest.json").read_text())
    assert result["mode"] == "quick"
    assert set(result["measures"]) == set(MEASURES)
    assert {"http", "latency", "appends", "projection_lag", "memory"} <= set(MEASURES)
    for key, measure in result["measures"].items():
        assert measure["status"] == "ok", (key, measure.get("error"))
        assert measure["rows"], key
        assert {row["status"] for row in measure["rows"]} <= STATUSES, key
    http_rows = result["measures"]["http"]["rows"]
    embedded = next(row for row in http_rows if "embedded" in row["measure"])
    if shutil.which("wrk") is None:
        assert embedded["status"] == "not measured"
        assert "wrk" in embedded["note"]
    else:
        assert embedded["status"] in {"pass", "miss"}
    # The lag is measured (a bench that ran but saw nothing projected says so in a bare row).
    lag_rows = result["measures"]["projection_lag"]["rows"]
    lag = next(row for row in lag_rows if "lag, embedded" in row["measure"])
    assert "p99" in lag["measured"], lag
    latency_rows = result["measures"]["latency"]["rows"]
    open_loop = next(row for row in latency_rows if "embedded" in row["measure"])
    if open_loop["status"] == "not measured":
        assert "vegeta" in open_loop["note"] or "wrk" in open_loop["note"], open_loop
    else:
        assert open_loop["status"] in {"pass", "miss"}
        assert "p99.9" in open_loop["measured"]
        # The server's threads were sampled: the event loop and the SQLite writer by name.
        threads = result["measures"]["latency"]["figures"]["embedded"]["threads"]
        names = {row["name"] for row in threads["by_thread"]}
        assert {"event loop", "sqlite-w:events"} <= names, names
        assert "event loop" in open_loop["note"], open_loop
