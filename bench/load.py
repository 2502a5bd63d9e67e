"""3. Aggregate load time against stream length, with snapshots, cold (a new repository each time,
so nothing comes from its cache; SQLite's own page cache stays warm, as in a running server).

Streams are built fast (``bench.streams``: ``Accounts.save`` with 10,000 records per append);
``save`` writes a snapshot when it crosses a multiple of ``snapshot_every`` (100), as commands do.
A stream of exactly 10,000 or 100,000 events therefore ends on a snapshot at its head, as one built
by single deposits would. Then 99 more events are added to the longest stream, to also show the
worst case of ``snapshot_every=100``: snapshot + 99 events to fold.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import Outcome, Row, Sizes, app_on, median, run_async
from bench.streams import build_account, grow
from core.repository import Repository
from handlers.accounts.account import AccountState, account_stream
from handlers.accounts.repositories import Accounts
from plugins.sqlite.store import SqliteEventStore

__all__ = ["run"]

TARGET_RATIO = 2.0


async def _cold_load_ms(store: SqliteEventStore, stream: str, loads: int) -> float:
    times: list[float] = []
    for _ in range(loads):
        repository: Repository[AccountState] = Accounts(store, store)
        started = time.perf_counter()
        await repository.load(stream)
        times.append(time.perf_counter() - started)
    return median(times) * 1000


async def _measure(sizes: Sizes, data_dir: Path) -> dict[str, object]:
    async with app_on(data_dir) as application:
        store = application.backends["event_store"]
        assert isinstance(store, SqliteEventStore)
        accounts = Accounts(store, store)
        started = time.perf_counter()
        states = {length: await build_account(accounts, length) for length in sizes.load_lengths}
        build_seconds = time.perf_counter() - started
        longest = max(sizes.load_lengths)
        streams = {length: account_stream(s.id) for length, s in states.items()}
        for stream in streams.values():  # warm SQLite's pages and the reader threads
            await _cold_load_ms(store, stream, 5)
        rounds: list[dict[str, float]] = []
        for _ in range(sizes.rounds):
            rounds.append(
                {
                    str(length): await _cold_load_ms(store, stream, sizes.loads_per_length)
                    for length, stream in streams.items()
                }
            )
        await grow(accounts, states[longest], 99)  # the head is now 99 events past a snapshot
        shortest = streams[min(sizes.load_lengths)]
        tail = [
            (
                await _cold_load_ms(store, shortest, sizes.loads_per_length),
                await _cold_load_ms(store, streams[longest], sizes.loads_per_length),
            )
            for _ in range(sizes.rounds)
        ]
        check = await Accounts(store, store).load(streams[longest])
        assert check.version == longest + 99, check.version
    return {
        "build_seconds": build_seconds,
        "rounds": rounds,
        "tail99_rounds_ms": tail,  # (shortest, longest + 99) per round
    }


def run(sizes: Sizes) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        figures = run_async(_measure(sizes, Path(tmp)))
    rounds: list[dict[str, float]] = figures["rounds"]  # type: ignore[assignment]
    lengths = sorted(int(key) for key in rounds[0])
    base = lengths[0]
    ratios = {length: median(r[str(length)] / r[str(base)] for r in rounds) for length in lengths}
    ms = {length: median(r[str(length)] for r in rounds) for length in lengths}
    figures |= {"median_ms": ms, "ratio_to_shortest": ratios}
    rows: list[Row] = []
    for length in lengths[1:]:
        target = length == lengths[-1]
        rows.append(
            Row(
                f"3. aggregate load, cold, {length:,} events (snapshot at head)",
                f"{ms[base]:.3f} ms at {base} events",
                f"{ms[length]:.3f} ms",
                f"{ratios[length]:.2f}x",
                f"≤ {TARGET_RATIO:g}x the {base}-event load" if target else "info",
                ("pass" if ratios[length] <= TARGET_RATIO else "miss") if target else "info",
            )
        )
    longest = lengths[-1]
    tail_rounds: list[tuple[float, float]] = figures["tail99_rounds_ms"]  # type: ignore[assignment]
    tail_ms = median(t for _, t in tail_rounds)
    tail_ratio = median(t / b for b, t in tail_rounds)
    figures["tail99_ratio"] = tail_ratio
    rows.append(
        Row(
            f"3. aggregate load, cold, {longest + 99:,} events (99 past the snapshot)",
            f"{median(b for b, _ in tail_rounds):.3f} ms at {base} events",
            f"{tail_ms:.3f} ms",
            f"{tail_ratio:.2f}x",
            "info (worst case of snapshot_every=100)",
            "info",
        )
    )
    return Outcome(rows, figures)
