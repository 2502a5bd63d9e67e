"""WAL checkpoints in their own thread (plugins/sqlite/checkpoints.py), on real SQLite files."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from plugins.sqlite.writer import GroupCommitWriter
from tests.support import main_file_rows_after

DDL = "CREATE TABLE t (n INTEGER, pad BLOB);"


def _insert(first: int, count: int, pad: int = 0) -> Callable[[sqlite3.Connection], None]:
    def job(connection: sqlite3.Connection) -> None:
        rows = [(n, bytes(pad)) for n in range(first, first + count)]
        connection.executemany("INSERT INTO t VALUES (?, ?)", rows)

    return job


async def _300_rows_then_main_file(tmp_path: Path, period: float | None, wait: float) -> int | None:
    path = tmp_path / "t.db"
    writer = GroupCommitWriter(path, ddl=DDL, synchronous="FULL", checkpoint_period=period)
    await writer.start()
    try:
        for first in range(0, 300, 30):
            await writer.submit(_insert(first, 30))
        return await main_file_rows_after(path, tmp_path / "scratch", "t", 300, seconds=wait)
    finally:
        await writer.close()


async def test_commits_reach_the_database_file_without_waiting_for_a_full_wal(
    tmp_path: Path,
) -> None:
    # 300 small rows are a few pages: far below the 1,000 pages at which SQLite itself would
    # checkpoint, so only the checkpoint thread can have copied them into the file.
    assert await _300_rows_then_main_file(tmp_path, period=0.05, wait=5) == 300


async def test_without_the_thread_the_commits_stay_in_the_wal(tmp_path: Path) -> None:
    # The control for the test above: the same writes, SQLite's own checkpoints only.
    assert await _300_rows_then_main_file(tmp_path, period=None, wait=0.5) == 0


async def test_under_steady_writes_the_wal_starts_over(tmp_path: Path) -> None:
    # About 24 MB written in 600 commits, one after another: if the WAL were never started over
    # (a checkpoint copies, but only a write that finds it wholly copied rewinds it), it would
    # hold all of it, as that is below SQLite's own backstop of 16,384 pages (64 MB).
    path = tmp_path / "t.db"
    wal = Path(f"{path}-wal")
    writer = GroupCommitWriter(path, ddl=DDL, synchronous="NORMAL", checkpoint_period=0.02)
    await writer.start()
    largest = 0
    try:
        for first in range(0, 6000, 10):
            await writer.submit(_insert(first, 10, pad=4000))
            largest = max(largest, wal.stat().st_size)
        count = await writer.submit(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        await writer.close()
    assert count == 6000
    written = 6000 * 4000
    # Never started over, it ends above ``written`` (about 30 MB: pages and frame headers);
    # started over, here it peaks at 7 to 11 MB.
    assert largest < written * 0.75, (largest, written)


async def test_closing_the_writer_ends_the_thread_and_keeps_every_commit(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    writer = GroupCommitWriter(path, ddl=DDL, synchronous="FULL", checkpoint_period=0.01)
    await writer.start()
    for first in range(0, 100, 10):
        await writer.submit(_insert(first, 10))
    await writer.close()
    alive = [t.name for t in threading.enumerate() if t.name.startswith("sqlite-checkpoints:")]
    assert alive == []
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("SELECT count(*), sum(n) FROM t").fetchone() == (100, 4950)
    finally:
        connection.close()
