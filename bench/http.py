"""1. HTTP deposits under wrk, against the plain Litestar baseline on the same server settings.

For each backend: 1,000 accounts, each with its own owner, are opened in-process (through the
mediator, on the data directory the server then uses); a real token is minted per owner with the
JWT plugin's ``mint_token`` and the server's secret. The server is ``python -m api.cli serve``,
which is ``balance serve`` with its defaults (uvicorn, one worker). wrk (``bench/deposit.lua``)
sends ``POST /accounts/<id>/deposits`` with the owner's Bearer token, uniformly over the accounts.

Every round runs, in turn, the baseline then each backend: a warm-up, then the measured run. The
ratio is taken within each round and the median of the rounds is reported. Any socket error,
timeout or non-2xx answer makes the row a miss, so a failing server can never look fast.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.backends import Backend, drop_own_names
from bench.common import (
    Outcome,
    Row,
    Sizes,
    app_on,
    at_least_text,
    by_round,
    median,
    open_accounts,
    run_async,
)
from bench.servers import Server, cpu_times, serve
from bench.wrk import WrkResult, run_wrk, wrk_path
from core.config import Settings
from plugins.jwt.tokens import mint_token

__all__ = ["API_SERVER", "accounts_files", "prepare_accounts", "run", "write_accounts_file"]

# ``balance serve`` with its defaults; ``serve`` adds --host 127.0.0.1 --port <free>.
API_SERVER = ["api.cli", "serve"]


async def prepare_accounts(settings: Settings, owners: list[str]) -> list[str]:
    async with app_on(settings.data_dir, settings=settings) as application:
        return await open_accounts(application, owners)


def write_accounts_file(path: Path, settings: Settings, ids: list[str], owners: list[str]) -> None:
    tokens: dict[str, str] = {}
    with path.open("w") as out:
        for account_id, owner in zip(ids, owners, strict=True):
            if owner not in tokens:
                tokens[owner] = mint_token(settings, owner, ttl=6 * 3600)
            out.write(f"{account_id} {tokens[owner]}\n")


@contextmanager
def accounts_files(backends: list[Backend], root: Path, count: int) -> Iterator[dict[str, Path]]:
    """``count`` accounts opened on each backend (in ``root / backend.key``), one owner each, and
    the "<id> <token>" file of each, by backend key; the backends' own names dropped after."""
    owners = [f"user-{i}" for i in range(count)]
    used = [backend.settings(root / backend.key) for backend in backends]
    try:
        files: dict[str, Path] = {}
        for backend, settings in zip(backends, used, strict=True):
            ids = run_async(prepare_accounts(settings, owners))
            files[backend.key] = root / f"{backend.key}.accounts"
            write_accounts_file(files[backend.key], settings, ids, owners)
        yield files
    finally:
        for settings in used:
            drop_own_names(settings)


@dataclass(frozen=True, slots=True)
class _Target:
    key: str
    server: Server
    accounts_file: Path


def _load(target: _Target, sizes: Sizes, seconds: int) -> WrkResult:
    return run_wrk(
        target.server.url,
        target.accounts_file,
        seconds=seconds,
        connections=sizes.wrk_connections,
        threads=sizes.wrk_threads,
    )


def _measure(target: _Target, sizes: Sizes) -> dict[str, Any]:
    """One measured wrk run, with the server's CPU per request over it: its event loop's (the
    main thread) and its whole process's. CPU time drifts less with the host than req/s does."""
    pid = target.server.process.pid
    before = cpu_times(pid)
    result = _load(target, sizes, sizes.wrk_seconds).as_dict()
    after = cpu_times(pid)
    if before is not None and after is not None and result["requests"]:
        used = after - before
        result["loop_cpu_us"] = 1e6 * used.loop / result["requests"]
        result["process_cpu_us"] = 1e6 * used.process / result["requests"]
    return result


def _not_measured(backend: Backend, reason: str) -> Row:
    return Row(
        f"1. HTTP deposits, {backend.label}",
        "",
        "",
        "",
        f"≥ {backend.http_ratio:.2f}",
        "not measured",
        reason,
    )


def run(sizes: Sizes, backends: list[Backend]) -> Outcome:
    if wrk_path() is None:
        reason = "wrk is not installed (bench/run installs it; --quick does not)"
        return Outcome([_not_measured(b, reason) for b in backends], {"skipped": reason})
    # Kafka + Mongo on a topic and database of this run's own, deleted at the end: with the
    # default ones each run would start on every earlier run's events and views.
    measured = [b.own_names("bench.http") for b in backends if b.missing is None]
    rows_skipped = [_not_measured(b, b.missing) for b in backends if b.missing is not None]
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        root = Path(tmp)
        with accounts_files(measured, root, sizes.http_accounts) as files:
            rounds = _rounds(sizes, measured, files, root)
    figures: dict[str, Any] = {"rounds": rounds, "backends": [b.key for b in measured]}
    baseline = _summary(rounds, "baseline")
    figures["baseline"] = baseline
    rows = [
        Row(
            "1. HTTP deposits, baseline: plain Litestar, msgspec body → JSON",
            "",
            f"{baseline['per_s']:,.0f} req/s, p50 {baseline['p50_ms']:.1f} ms, "
            f"p99 {baseline['p99_ms']:.1f} ms",
            "1.00",
            "reference",
            "info" if baseline["errors"] == 0 else "miss",
            _joined(_baseline_rounds_note(rounds), _cpu_note(baseline), _errors_note(baseline)),
        )
    ]
    for backend in measured:
        summary = _summary(rounds, backend.key)
        ratios = [r[backend.key]["per_s"] / r["baseline"]["per_s"] for r in rounds]
        ratio = median(ratios)
        summary["ratio"] = ratio
        figures[backend.key] = summary
        ok = ratio >= backend.http_ratio and summary["errors"] == 0
        rows.append(
            Row(
                f"1. HTTP deposits, {backend.label}",
                f"{baseline['per_s']:,.0f} req/s",
                f"{summary['per_s']:,.0f} req/s, p50 {summary['p50_ms']:.1f} ms, "
                f"p99 {summary['p99_ms']:.1f} ms",
                at_least_text(ratio),
                f"≥ {backend.http_ratio:.2f}",
                "pass" if ok else "miss",
                _joined(
                    _backend_rounds_note(ratios, [r[backend.key]["p99_ms"] for r in rounds]),
                    _cpu_note(summary, baseline),
                    _errors_note(summary),
                ),
            )
        )
    return Outcome(rows + rows_skipped, figures)


def _rounds(
    sizes: Sizes, backends: list[Backend], files: dict[str, Path], root: Path
) -> list[dict[str, dict[str, Any]]]:
    logs = root / "logs"
    logs.mkdir()
    rounds: list[dict[str, dict[str, Any]]] = []
    with ExitStack() as servers:
        baseline = servers.enter_context(serve("baseline", ["bench.baseline_app"], {}, logs))
        # The baseline ignores the tokens; it gets the same requests as the first backend.
        targets = [_Target("baseline", baseline, files[backends[0].key])]
        for backend in backends:
            env = backend.server_env(root / backend.key)
            server = servers.enter_context(serve(f"api-{backend.key}", API_SERVER, env, logs))
            targets.append(_Target(backend.key, server, files[backend.key]))
        for _ in range(sizes.rounds):
            results: dict[str, dict[str, Any]] = {}
            for target in targets:
                _load(target, sizes, sizes.wrk_warmup_seconds)
                results[target.key] = _measure(target, sizes)
            rounds.append(results)
    return rounds


def _summary(rounds: list[dict[str, dict[str, Any]]], key: str) -> dict[str, Any]:
    summary = {
        "per_s": median(r[key]["per_s"] for r in rounds),
        "p50_ms": median(r[key]["p50_ms"] for r in rounds),
        "p99_ms": median(r[key]["p99_ms"] for r in rounds),
        "errors": sum(r[key]["errors"] for r in rounds),
    }
    for figure in ("loop_cpu_us", "process_cpu_us"):
        if all(figure in r[key] for r in rounds):
            summary[figure] = median(r[key][figure] for r in rounds)
    return summary


def _cpu_note(summary: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    """The server's CPU per request; beside the baseline's loop figure, their ratio, which is
    the req/s ratio a server bound by its event loop would reach."""
    if "loop_cpu_us" not in summary:
        return ""
    note = (
        f"CPU per request: event loop {summary['loop_cpu_us']:.0f} µs, "
        f"whole process {summary['process_cpu_us']:.0f} µs"
    )
    if baseline is not None and "loop_cpu_us" in baseline:
        ratio = baseline["loop_cpu_us"] / summary["loop_cpu_us"]
        note += f" (baseline's loop {baseline['loop_cpu_us']:.0f} µs: {ratio:.2f})"
    return note


def _joined(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def _rounds_note(first: str, p99s: list[float]) -> str:
    """A row's figure by round (``first``, already worded), then its p99 by round."""
    return f"{first}; p99 by round {by_round(p99s)} ms"


def _backend_rounds_note(ratios: list[float], p99s: list[float]) -> str:
    return _rounds_note("ratio by round " + " / ".join(map(at_least_text, ratios)), p99s)


def _baseline_rounds_note(rounds: list[dict[str, dict[str, Any]]]) -> str:
    """The reference's own rounds: how far the host moved it within the run, which bounds how
    much an absolute figure (the p99 targets) can say about the service."""
    per_s = by_round((r["baseline"]["per_s"] for r in rounds), "{:,.0f}")
    return _rounds_note(f"req/s by round {per_s}", [r["baseline"]["p99_ms"] for r in rounds])


def _errors_note(summary: dict[str, Any]) -> str:
    errors = summary["errors"]
    return f"{errors} failed requests (errors, timeouts, non-2xx)" if errors else ""
