"""WAL checkpoints in their own thread (core/eventsourcing/checkpoints.py), on real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from core.eventsourcing.checkpoints import BACKSTOP_PAGES, WalCheckpointer
from core.eventsourcing.writer import GroupCommitWriter
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


def _wal_salt(wal: Path) -> bytes:
    """The WAL header's salts: SQLite changes them each time it starts the WAL over."""
    with wal.open("rb") as file:
        return file.read(32)[16:24]


async def test_under_steady_writes_the_wal_starts_over(tmp_path: Path) -> None:
    # Commits of 40 KB, one after another. A checkpoint copies the WAL into the file, but only a
    # write that finds it wholly copied starts it over: the thread's passes and the writer's
    # finishing copy must lead there, long before SQLite's own backstop (BACKSTOP_PAGES).
    # How many commits that takes depends on how often the thread gets a core: where it has
    # not started the WAL over yet, each commit waits for one more pass of the thread.
    path = tmp_path / "t.db"
    wal = Path(f"{path}-wal")
    writer = GroupCommitWriter(path, ddl=DDL, synchronous="NORMAL", checkpoint_period=0.02)
    await writer.start()
    rows, restarts, largest = 0, 0, 0
    try:
        await writer.submit(_insert(0, 10, pad=4000))
        rows, salt = 10, _wal_salt(wal)
        while restarts < 3 and rows < 6000:
            passes = writer.checkpoint_passes
            await writer.submit(_insert(rows, 10, pad=4000))
            rows += 10
            largest = max(largest, wal.stat().st_size)
            if _wal_salt(wal) != salt:
                restarts, salt = restarts + 1, _wal_salt(wal)
            elif rows > 1000:
                await _one_more_pass(writer, passes)
        count = await writer.submit(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        await writer.close()
    assert count == rows
    assert restarts == 3, (restarts, rows)
    assert largest < BACKSTOP_PAGES * 4096, largest


async def _one_more_pass(writer: GroupCommitWriter, passes: int) -> None:
    for _ in range(3000):  # 30 s: only a stuck thread takes that long
        if writer.checkpoint_passes > passes:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the checkpoint thread ran no pass")


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


def test_a_stop_just_before_the_thread_rearms_still_ends_it(tmp_path: Path) -> None:
    # stop() sets both events, then joins. When it lands after the thread's period ran out and
    # before the thread clears "committed" for the next round, that clear undoes its wake-up:
    # the thread must still see the stop, not wait for a commit that never comes.
    path = tmp_path / "t.db"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    checkpointer = WalCheckpointer(path, synchronous="NORMAL", period=0.01)

    class StopBeforeTheClear(threading.Event):
        def clear(self) -> None:
            checkpointer._stopping.set()  # what stop() does before it joins
            self.set()
            super().clear()

    checkpointer._committed = StopBeforeTheClear()
    checkpointer.start(writer)
    thread = checkpointer._thread
    assert thread is not None
    checkpointer.committed(writer)  # a commit: the thread waits its period, then rearms
    thread.join(timeout=30)  # an upper bound that turns the hang into a failure
    assert not thread.is_alive()
    writer.close()
