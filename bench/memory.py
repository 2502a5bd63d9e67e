"""6. Memory: the resident set of the API server process holding 100,000 accounts.

Method:
1. In-process, through the mediator, 100,000 accounts are opened (one owner, 64 in flight) in a
   fresh data directory; the application is closed.
2. The server (``python -m api.cli serve``, i.e. ``balance serve``) starts on that directory. Its
   start-up projects the 100,000 openings into the read model (the projector catches up before
   the server answers). RSS is read from ``/proc/<pid>/status`` once it answers ("idle").
3. wrk (one thread, 32 connections, ``deposit.lua`` in sequential mode) then deposits once into
   every account, in chunks of 10 s until each of the 100,000 has been touched. A deposit loads
   the aggregate (into the repository's cache, bounded at 10,000 by default), takes its lock,
   appends, and the projector applies it; the token is verified and cached. RSS is read again
   ("touched"), with the peak (VmHWM). The target is judged on the larger of the two readings.
The plain Litestar baseline server's idle RSS is shown beside it, for scale.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.backends import EMBEDDED
from bench.common import Outcome, Row, Sizes, run_async
from bench.http import API_SERVER, prepare_accounts, write_accounts_file
from bench.servers import rss_mb, serve
from bench.wrk import run_wrk, wrk_path

__all__ = ["run"]

TARGET_MB = 300.0
OWNER = "bench-owner"
CHUNK_SECONDS = 10
CONNECTIONS = 32


def run(sizes: Sizes) -> Outcome:
    count = sizes.memory_accounts
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        root = Path(tmp)
        settings = EMBEDDED.settings(root / "data")
        owners = [OWNER] * count
        started = time.perf_counter()
        ids = run_async(prepare_accounts(settings, owners))
        opened_s = time.perf_counter() - started
        accounts_file = root / "accounts"
        write_accounts_file(accounts_file, settings, ids, owners)
        logs = root / "logs"
        logs.mkdir()
        with serve("baseline", ["bench.baseline_app"], {}, logs) as baseline:
            baseline_mb = rss_mb(baseline.process.pid)["rss_mb"]
        started = time.perf_counter()
        with serve("api", API_SERVER, EMBEDDED.server_env(root / "data"), logs) as server:
            start_s = time.perf_counter() - started
            idle = rss_mb(server.process.pid)
            touched, touch_s = _touch_all(server.url, accounts_file, count, sizes)
            after = rss_mb(server.process.pid)
    measured = max(after["rss_mb"], idle["rss_mb"])
    figures: dict[str, Any] = {
        "accounts": count,
        "open_in_process_s": opened_s,
        "server_start_s": start_s,
        "idle": idle,
        "touched": after,
        "touched_accounts": touched,
        "touch_s": touch_s,
        "baseline_idle_rss_mb": baseline_mb,
    }
    note = (
        f"idle after start {idle['rss_mb']:.0f} MB; peak {after['peak_mb']:.0f} MB; "
        f"{touched:,} accounts touched by a deposit"
    )
    if touched < count:
        note += " (wrk missing: not every account was touched)"
    rows = [
        Row(
            f"6. memory: API server RSS, {count:,} accounts",
            f"{baseline_mb:.0f} MB (plain Litestar, idle)",
            f"{measured:.0f} MB",
            f"{measured / baseline_mb:.1f}x",
            f"≤ {TARGET_MB:g} MB",
            "pass" if measured <= TARGET_MB else "miss",
            note,
        )
    ]
    return Outcome(rows, figures)


def _touch_all(url: str, accounts_file: Path, count: int, sizes: Sizes) -> tuple[int, float]:
    """Deposit once into every account (wrk, sequential walk); how many, and how long it took."""
    if wrk_path() is None:
        return 0, 0.0
    started = time.perf_counter()
    offset = 0
    chunk = 2 if sizes.quick else CHUNK_SECONDS
    while offset < count:
        result = run_wrk(
            url,
            accounts_file,
            seconds=chunk,
            connections=CONNECTIONS,
            threads=1,
            mode="sequential",
            offset=offset,
        )
        if result.errors:
            raise RuntimeError(f"{result.errors} deposits failed while touching the accounts")
        # Requests still in flight when wrk stopped may not have been answered: walk again
        # from the first of those.
        offset += max(1, result.requests - CONNECTIONS)
    return count, time.perf_counter() - started
