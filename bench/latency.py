"""7. Latency, open-loop: deposits at a constant rate with vegeta, on the baseline and each backend.

The offered rate is a share (``Sizes.latency_share``, 20%) of the baseline's maximum measured in
the same run by the closed-loop HTTP bench, so the load follows the host: on a slower host both
the rate and the service slow down together. The workload is the HTTP bench's: 1,000 accounts,
each request with its owner's real token, spread uniformly over the accounts (the targets file
holds every account once, shuffled, and vegeta cycles through it). Each server gets a warm-up at
the same rate, then the measured attack. The row reports p50, p99, p99.9 and the achieved rate;
any failed request (error, timeout, non-2xx) makes it a miss.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

from bench.backends import Backend
from bench.common import Outcome, Row, Sizes
from bench.http import API_SERVER, accounts_files
from bench.servers import serve
from bench.threads import ThreadSampler, loop_during, totals
from bench.vegeta import Attack, Target, run_attack, vegeta_path, write_targets
from bench.wrk import run_wrk, wrk_path

__all__ = ["run"]

BODY = b'{"amount":"1.00"}'
SLOWEST_SHARE = 0.01
EVENT_LOOP = "event loop"  # the server's main thread


def _targets(path: Path, url: str, accounts_file: Path, seed: int) -> Path:
    lines = [line.split() for line in accounts_file.read_text().splitlines() if line.strip()]
    random.Random(seed).shuffle(lines)
    write_targets(
        path,
        (
            Target(
                "POST",
                f"{url}/accounts/{account_id}/deposits",
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                BODY,
            )
            for account_id, token in lines
        ),
    )
    return path


def _text(figures: dict[str, Any]) -> str:
    return (
        f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
        f"p99.9 {figures['p999_ms']:.1f} ms at {figures['achieved_per_s']:,.0f} req/s"
    )


def _thread_figures(sampler: ThreadSampler, attack: Attack) -> dict[str, Any]:
    """The server's CPU per request by thread, and how its event loop spent the moments when
    the slowest 1% of the requests were in flight (bench/threads.py)."""
    requests = max(attack.requests, 1)
    loop = loop_during(sampler.samples, sampler.pid, attack.slowest(SLOWEST_SHARE))
    return {
        "by_thread": [
            {
                "name": row.name,
                "threads": row.threads,
                "cpu_us_per_request": row.cpu_s / requests * 1e6,
                "waited_us_per_request": row.waited_s / requests * 1e6,
            }
            for row in totals(sampler.samples, main=(sampler.pid, EVENT_LOOP))
        ],
        "loop_while_slowest": {
            "seconds": loop.seconds,
            "running": loop.running,
            "waiting_for_core": loop.waiting_for_core,
            "blocked": loop.blocked,
        },
    }


def _threads_note(figures: dict[str, Any]) -> str:
    threads = figures.get("threads")
    if not threads or not threads["by_thread"]:
        return ""
    busiest = ", ".join(
        f"{row['name']} {row['cpu_us_per_request']:.0f} µs"
        for row in threads["by_thread"][:4]
        if row["cpu_us_per_request"] >= 1
    )
    loop = threads["loop_while_slowest"]
    text = f"CPU per request: {busiest}"
    if loop["seconds"] > 0:
        text += (
            f"; while the slowest 1% were in flight the event loop ran {loop['running']:.0%}, "
            f"waited for a core {loop['waiting_for_core']:.0%}, and for the GIL or work "
            f"{loop['blocked']:.0%} of the time"
        )
    return text


def _failures_note(figures: dict[str, Any]) -> str:
    failed = figures["failures"]
    return f"{failed} of {figures['requests']} requests failed" if failed else ""


def _not_measured(label: str, target: str, reason: str) -> Row:
    return Row(f"7. Open-loop latency, {label}", "", "", "", target, "not measured", reason)


def _baseline_maximum(sizes: Sizes, accounts_file: Path, logs: Path) -> float:
    """The baseline's closed-loop req/s, for a run where the HTTP bench gave none."""
    with serve("baseline-max", ["bench.baseline_app"], {}, logs) as server:
        connections, threads = sizes.wrk_connections, sizes.wrk_threads
        for seconds in (sizes.wrk_warmup_seconds, sizes.wrk_seconds):
            result = run_wrk(
                server.url, accounts_file, seconds=seconds, connections=connections, threads=threads
            )
        return result.per_s


def run(sizes: Sizes, backends: list[Backend], baseline_per_s: float | None) -> Outcome:
    targets_text = {b.key: f"p99 ≤ {b.latency_p99_ms:g} ms" for b in backends}
    if vegeta_path() is None:
        reason = "vegeta is not built (bench/run builds it; --quick does not)"
        rows = [_not_measured("baseline", "reference", reason)]
        rows += [_not_measured(b.label, targets_text[b.key], reason) for b in backends]
        return Outcome(rows, {"skipped": reason})
    measured = [b.own_names("bench.latency") for b in backends if b.missing is None]
    skipped = [_not_measured(b.label, targets_text[b.key], b.missing or "") for b in backends]
    skipped = [row for row, b in zip(skipped, backends, strict=True) if b.missing is not None]
    if not measured:
        return Outcome(skipped, {"skipped": "no backend to measure"})
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        root = Path(tmp)
        logs = root / "logs"
        logs.mkdir()
        with accounts_files(measured, root, sizes.http_accounts) as files:
            first = files[measured[0].key]
            if baseline_per_s is None:
                if wrk_path() is None:
                    reason = "no baseline maximum: the HTTP bench did not run and wrk is missing"
                    rows = [_not_measured("baseline", "reference", reason)]
                    rows += [_not_measured(b.label, targets_text[b.key], reason) for b in measured]
                    return Outcome(rows + skipped, {"skipped": reason})
                baseline_per_s = _baseline_maximum(sizes, first, logs)
            rate = max(1, round(baseline_per_s * sizes.latency_share))
            figures["baseline_max_per_s"] = baseline_per_s
            figures["rate_per_s"] = rate

            def attack(name: str, module: list[str], env: dict[str, str], accounts: Path) -> None:
                with serve(name, module, env, logs) as server:
                    path = _targets(root / f"{name}.targets", server.url, accounts, seed=len(name))
                    run_attack(path, rate=rate, seconds=sizes.latency_warmup_seconds)
                    with ThreadSampler(server.process.pid) as sampler:
                        measured_attack = run_attack(path, rate=rate, seconds=sizes.latency_seconds)
                    figures[name] = {
                        **measured_attack.as_dict(),
                        "threads": _thread_figures(sampler, measured_attack),
                    }

            # The baseline ignores the tokens; it gets the same requests as the first backend.
            attack("baseline", ["bench.baseline_app"], {}, first)
            for backend in measured:
                env = backend.server_env(root / backend.key)
                attack(backend.key, API_SERVER, env, files[backend.key])
    return Outcome(_rows(figures, measured, sizes) + skipped, figures)


def _rows(figures: dict[str, Any], measured: list[Backend], sizes: Sizes) -> list[Row]:
    rate = figures["rate_per_s"]
    offered = (
        f"{rate:,} req/s offered ({sizes.latency_share:.0%} of the baseline's "
        f"{figures['baseline_max_per_s']:,.0f} req/s closed-loop maximum), "
        f"{sizes.latency_seconds:g} s after a {sizes.latency_warmup_seconds:g} s warm-up"
    )
    baseline = figures["baseline"]
    rows = [
        Row(
            "7. Open-loop latency, baseline: plain Litestar",
            "",
            _text(baseline),
            "",
            "reference",
            "miss" if baseline["failures"] else "info",
            "; ".join(
                note
                for note in (offered, _failures_note(baseline), _threads_note(baseline))
                if note
            ),
        )
    ]
    for backend in measured:
        own = figures[backend.key]
        ok = own["p99_ms"] <= backend.latency_p99_ms and own["failures"] == 0
        rows.append(
            Row(
                f"7. Open-loop latency, {backend.label}",
                f"p99 {baseline['p99_ms']:.1f} ms",
                _text(own),
                f"{own['p99_ms'] / baseline['p99_ms']:.2f}" if baseline["p99_ms"] else "",
                f"p99 ≤ {backend.latency_p99_ms:g} ms",
                "pass" if ok else "miss",
                "; ".join(note for note in (_failures_note(own), _threads_note(own)) if note),
            )
        )
    return rows
