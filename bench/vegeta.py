"""Open-loop load with vegeta: requests leave on a fixed schedule whether or not the earlier ones
were answered, so a slow answer cannot slow the load down and hide itself (wrk, closed-loop,
waits for each answer before the next request on its connection).

``bench/run`` builds vegeta through the Go module proxy into the project's cache; ``$VEGETA``
names another binary. The results are read from vegeta's CSV encoding, and the percentiles are
taken here (nearest rank) over every request of the attack.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = [
    "VERSION",
    "Attack",
    "Target",
    "percentile",
    "read_results",
    "run_attack",
    "vegeta_path",
    "write_targets",
]

VERSION: Final = "v12.13.0"
CACHED: Final = Path.home() / ".cache" / "account-balance" / f"vegeta-{VERSION}" / "vegeta"


@dataclass(frozen=True, slots=True)
class Target:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Attack:
    """One attack's figures: the latencies (ms) of every request sent, and what came back."""

    offered_per_s: float
    seconds: float
    latencies_ms: list[float]
    successes: int
    failures: int  # transport errors, timeouts and non-2xx answers
    sent_ns: list[int] = field(default_factory=list)  # each request's send time, as latencies_ms

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def achieved_per_s(self) -> float:
        return self.successes / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "offered_per_s": self.offered_per_s,
            "achieved_per_s": self.achieved_per_s,
            "seconds": self.seconds,
            "requests": self.requests,
            "successes": self.successes,
            "failures": self.failures,
            "p50_ms": percentile(ordered, 50),
            "p99_ms": percentile(ordered, 99),
            "p999_ms": percentile(ordered, 99.9),
            "max_ms": ordered[-1] if ordered else math.nan,
        }

    def slowest(self, share: float) -> list[tuple[float, float]]:
        """The ``share`` slowest requests (at least one) as (sent, answered) wall-clock seconds."""
        count = max(1, math.ceil(len(self.latencies_ms) * share)) if self.latencies_ms else 0
        ranked = sorted(zip(self.sent_ns, self.latencies_ms, strict=True), key=lambda pair: pair[1])
        return [(sent / 1e9, sent / 1e9 + ms / 1e3) for sent, ms in ranked[len(ranked) - count :]]


def vegeta_path() -> str | None:
    named = os.environ.get("VEGETA")
    if named:
        return named
    if CACHED.is_file():
        return str(CACHED)
    return shutil.which("vegeta")


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of ``ordered`` (sorted ascending): the smallest value with at
    least p% of the values at or below it. NaN when there is none."""
    if not ordered:
        return math.nan
    # Rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point.
    rank = max(1, math.ceil(round(p * len(ordered) / 100, 9)))
    return ordered[min(rank, len(ordered)) - 1]


def write_targets(path: Path, targets: Iterable[Target]) -> None:
    """vegeta's JSON target format, one target per line; the attack cycles through them."""
    with path.open("w") as out:
        for target in targets:
            line = {
                "method": target.method,
                "url": target.url,
                "header": {name: [value] for name, value in target.headers.items()},
                "body": base64.b64encode(target.body).decode("ascii"),
            }
            out.write(json.dumps(line) + "\n")


def read_results(rows: Iterable[Sequence[str]], offered_per_s: float) -> Attack:
    """An attack's figures from the rows of ``vegeta encode --to csv`` (timestamp ns, status,
    latency ns, bytes out, bytes in, error, ...)."""
    latencies: list[float] = []
    sent: list[int] = []
    successes = failures = 0
    for row in rows:
        sent.append(int(row[0]))
        latencies.append(int(row[2]) / 1e6)
        status, error = int(row[1]), row[5]
        if 200 <= status < 300 and not error:
            successes += 1
        else:
            failures += 1
    # The span of the schedule: from the first request sent to the last one answered.
    seconds = 0.0
    if sent:
        last = max(s + round(latency * 1e6) for s, latency in zip(sent, latencies, strict=True))
        seconds = (last - min(sent)) / 1e9
    return Attack(offered_per_s, seconds, latencies, successes, failures, sent)


def run_attack(targets_file: Path, *, rate: int, seconds: float, timeout_s: float = 5) -> Attack:
    """Send the targets at ``rate`` requests per second for ``seconds``, open-loop."""
    vegeta = vegeta_path()
    assert vegeta is not None, "vegeta is not built (bench/run builds it)"
    with tempfile.TemporaryDirectory(prefix="bench-vegeta-") as tmp:
        results = Path(tmp) / "results.bin"
        attack = [
            vegeta, "attack", "-format=json", f"-targets={targets_file}", f"-rate={rate}/1s",
            f"-duration={seconds}s", f"-timeout={timeout_s}s", f"-output={results}",
        ]  # fmt: skip
        subprocess.run(attack, check=True, capture_output=True)
        encoded = Path(tmp) / "results.csv"
        encode = [vegeta, "encode", "--to", "csv", f"--output={encoded}", str(results)]
        subprocess.run(encode, check=True, capture_output=True)
        with encoded.open(newline="") as rows:
            return read_results(csv.reader(rows), float(rate))
