"""Running wrk with ``bench/deposit.lua`` and reading the figures its ``done()`` prints."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SCRIPT", "WrkResult", "run_wrk", "wrk_path"]

SCRIPT = Path(__file__).resolve().parent / "deposit.lua"


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, timeouts and non-2xx/3xx answers
    issued: list[int]
    # Every 0.1th percentile of the latency (ms), the 0.1th first: to merge several runs.
    quantiles_ms: tuple[float, ...] = ()
    errors_by_kind: dict[str, int] | None = None  # the errors' kinds, those that happened

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": self.seconds,
            "per_s": self.per_s,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "errors": self.errors,
            "errors_by_kind": self.errors_by_kind or {},
        }


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    accounts_file: Path,
    *,
    seconds: int,
    connections: int,
    threads: int,
    mode: str = "random",
    offset: int = 0,
) -> WrkResult:
    wrk = wrk_path()
    assert wrk is not None, "wrk is not installed"
    command = [
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s",
        "-s", str(SCRIPT), url, "--", str(accounts_file), mode, str(offset), str(threads),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next((row for row in done.stdout.splitlines() if row.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    kinds = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    errors = sum(data[key] for key in kinds)
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
        issued=[int(n) for n in data["issued"]],
        quantiles_ms=tuple(q / 1000 for q in data.get("quantiles_us", ())),
        errors_by_kind={key: data[key] for key in kinds if data[key]},
    )
