"""The SQLite backends on real files: what an acknowledgement promises across close, reopen and a
crash, and that the event loop keeps running while appends are committed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from core.errors import ConcurrencyError, StoreUnavailableError
from core.eventsourcing.schema import EVENTS_DDL
from core.eventsourcing.writer import GroupCommitWriter
from core.records import EventRecord
from handlers.accounts.readmodel import (
    AccountChanged,
    AccountOpenedView,
    MovementAdded,
    ViewChange,
)
from handlers.accounts.views import AccountView, Movement
from plugins.sqlite.readmodel import SqliteReadModel
from plugins.sqlite.store import SqliteEventStore
from tests.support import event_record as record

_ROOT = str(Path(__file__).resolve().parents[2])
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    store = SqliteEventStore(tmp_path)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


async def reopened(data_dir: Path) -> list[EventRecord]:
    """Every event in ``data_dir``, read by a fresh store, in position order."""
    store = SqliteEventStore(data_dir)
    await store.start()
    try:
        found: list[EventRecord] = []
        subscription = store.subscribe("check", 0)
        while (batch := await subscription.next_batch(timeout=0)) is not None:
            found.extend(batch.events)
        return found
    finally:
        await store.close()


def assert_whole(events: list[EventRecord]) -> dict[str, int]:
    """Positions 1..n and, per stream, versions 1..v without gaps; returns each stream's v."""
    assert [e.position for e in events] == list(range(1, len(events) + 1))
    versions: dict[str, list[int]] = {}
    for event in events:
        versions.setdefault(event.stream_id, []).append(event.version)
    for stream, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), stream
    return {stream: len(seen) for stream, seen in versions.items()}


@pytest.fixture
async def views(tmp_path: Path) -> AsyncIterator[SqliteReadModel]:
    model = SqliteReadModel(tmp_path)
    await model.start()
    try:
        yield model
    finally:
        await model.close()


def opened_account(account_id: str = "acc-1") -> AccountOpenedView:
    return AccountOpenedView(AccountView(account_id, "alice", "EUR", 0, "open", 1, T0))


async def test_acknowledged_events_survive_close_and_reopen(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path)
    await store.start()
    streams = [f"account-{n}" for n in range(40)]
    acknowledged: list[EventRecord] = []

    async def deposit(stream: str, count: int) -> None:
        # Read the version, append on top, retry on a conflict: what a command handler does.
        while True:
            version = await store.stream_version(stream)
            records = [record(stream, version + n) for n in range(1, count + 1)]
            try:
                acknowledged.extend(await store.append(stream, version, records))
                return
            except ConcurrencyError:
                continue

    await asyncio.gather(*(deposit(streams[n % 40], 1 + n % 3) for n in range(400)))
    await store.close()

    events = await reopened(tmp_path)
    assert sorted(e.event_id for e in events) == sorted(e.event_id for e in acknowledged)
    assert_whole(events)
    assert len(events) == sum(1 + n % 3 for n in range(400))


async def test_close_commits_the_appends_already_queued(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path)
    await store.start()
    tasks = [
        asyncio.create_task(store.append(f"account-{n}", 0, [record(f"account-{n}", 1)]))
        for n in range(500)
    ]
    await asyncio.sleep(0)  # every task queues its append and waits for its commit

    await store.close()

    assert all(task.done() and task.exception() is None for task in tasks)
    assert len(assert_whole(await reopened(tmp_path))) == 500


async def test_a_closed_store_refuses_appends(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path)
    assert not await store.ready()
    await store.start()
    assert await store.ready()
    await store.close()
    assert not await store.ready()
    with pytest.raises(StoreUnavailableError):
        await store.append("account-1", 0, [record("account-1", 1)])
    with pytest.raises(StoreUnavailableError):
        await store.read("account-1")


def test_a_process_crash_loses_no_acknowledged_event(tmp_path: Path) -> None:
    # The child prints each event id once its append is acknowledged, then dies without
    # closing anything: no clean shutdown, no final checkpoint of the WAL.
    child = textwrap.dedent(
        f"""
        import asyncio, os, sys
        sys.path.insert(0, {_ROOT!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_sqlite_durability import record
        from plugins.sqlite.store import SqliteEventStore

        async def main():
            store = SqliteEventStore(__import__("pathlib").Path({str(tmp_path)!r}))
            await store.start()
            async def one(n):
                stream = f"account-{{n % 10}}"
                for _ in range(20):
                    version = await store.stream_version(stream)
                    try:
                        [stored] = await store.append(
                            stream, version, [record(stream, version + 1)]
                        )
                    except Exception:
                        continue
                    print(stored.event_id, flush=True)
                    return
            await asyncio.gather(*(one(n) for n in range(300)))
            os._exit(1)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1, done.stderr
    acknowledged = set(done.stdout.split())
    assert len(acknowledged) > 100

    events = asyncio.run(reopened(tmp_path))
    assert acknowledged <= {e.event_id for e in events}
    assert_whole(events)


async def test_the_event_loop_keeps_running_while_appends_commit(
    store: SqliteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = 0
    in_flight = True

    async def ticker() -> None:
        nonlocal ticks
        while in_flight:
            await asyncio.sleep(0)
            ticks += 1

    # Each commit waits (up to 5 s) for the loop to tick 10 more times before it starts. Had the
    # appends run SQLite on the loop, the loop could not tick during that wait.
    writer = store._writer
    commit = writer._commit
    ticks_while_committing: list[int] = []

    def commit_after_ticks(connection: sqlite3.Connection, items: list[Any]) -> list[Any]:
        start, deadline = ticks, time.monotonic() + 5.0
        while ticks < start + 10 and time.monotonic() < deadline:
            time.sleep(0.0005)
        ticks_while_committing.append(ticks - start)
        return commit(connection, items)

    monkeypatch.setattr(writer, "_commit", commit_after_ticks)
    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    streams = [f"account-{n}" for n in range(200)]

    await asyncio.gather(*(store.append(s, 0, [record(s, 1)]) for s in streams))
    in_flight = False
    await ticking

    assert ticks_while_committing
    assert min(ticks_while_committing) >= 10
    assert await store.stream_version(streams[-1]) == 1


async def test_group_commit_batches_concurrent_appends(store: SqliteEventStore) -> None:
    streams = [f"account-{n}" for n in range(1000)]
    await asyncio.gather(*(store.append(s, 0, [record(s, 1)]) for s in streams))
    writer = store._writer
    assert writer.jobs == 1000
    assert writer.batches < 1000  # most commits carried many appends


async def test_a_failing_job_is_rolled_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    writer = GroupCommitWriter(path, ddl="CREATE TABLE t (n INTEGER);", synchronous="FULL")
    await writer.start()

    def insert(n: int, fail: Exception | None = None) -> asyncio.Future[int]:
        def job(connection: sqlite3.Connection) -> int:
            connection.execute("INSERT INTO t VALUES (?)", (n,))
            connection.execute("INSERT INTO t VALUES (?)", (-n,))
            if fail is not None:
                raise fail
            return n

        return writer.submit(job)

    try:
        results = await asyncio.gather(
            insert(1),
            insert(2, ValueError("refused")),
            insert(3, sqlite3.OperationalError("disk I/O error")),
            insert(4),
            return_exceptions=True,
        )
    finally:
        await writer.close()

    assert results[0] == 1
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], StoreUnavailableError)
    assert results[3] == 4
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT n FROM t ORDER BY n").fetchall()
    assert rows == [(-4,), (-1,), (1,), (4,)]


async def test_the_read_model_checkpoint_survives_reopen(tmp_path: Path) -> None:
    opened = opened_account()
    model = SqliteReadModel(tmp_path)
    await model.start()
    await model.apply("accounts", [opened], 42)
    await model.close()

    again = SqliteReadModel(tmp_path)
    await again.start()
    try:
        assert await again.checkpoint("accounts") == 42
        assert await again.get_account("acc-1") == opened.account
    finally:
        await again.close()


async def test_a_failing_change_rolls_back_its_batch_and_checkpoint(
    views: SqliteReadModel,
) -> None:
    await views.apply("accounts", [], 10)
    naive = datetime(2026, 3, 1)  # noqa: DTZ001 (the point of the test)
    bad = AccountOpenedView(AccountView("acc-2", "bob", "EUR", 0, "open", 1, naive))
    with pytest.raises(ValueError, match="timezone-aware"):
        await views.apply("accounts", [opened_account(), bad], 11)
    assert await views.get_account("acc-1") is None
    assert await views.checkpoint("accounts") == 10


async def test_a_batch_that_fails_inside_its_statement_leaves_no_view_and_no_checkpoint(
    views: SqliteReadModel,
) -> None:
    await views.apply("accounts", [], 10)
    deposit = Movement("evt-1", "acc-1", "deposit", 100, 100, 2, T0)
    changes: list[ViewChange] = [
        opened_account(),
        MovementAdded(deposit),
        AccountChanged("acc-1", 2, balance=100),
    ]
    # The views go in first; the checkpoint, written last in the same statement (the batch
    # trigger's last write), is refused.
    with pytest.raises(StoreUnavailableError, match="NOT NULL"):
        await views.apply("accounts", changes, None)  # type: ignore[arg-type]
    assert await views.get_account("acc-1") is None
    assert await views.statement("acc-1", None, None, 0, 10) == []
    assert await views.checkpoint("accounts") == 10


async def test_the_batch_trigger_is_created_again_at_each_start(tmp_path: Path) -> None:
    model = SqliteReadModel(tmp_path)
    await model.start()
    await model.close()
    with contextlib.closing(sqlite3.connect(model.path, isolation_level=None)) as connection:
        connection.executescript(
            "DROP TRIGGER view_batches_apply;"
            "CREATE TRIGGER view_batches_apply INSTEAD OF INSERT ON view_batches"
            " BEGIN SELECT 1; END;"
        )

    await model.start()
    try:
        await model.apply("accounts", [opened_account()], 1)
        assert await model.get_account("acc-1") == opened_account().account
        assert await model.checkpoint("accounts") == 1
    finally:
        await model.close()


async def test_a_batch_the_planner_cannot_merge_is_applied_as_change_by_change(
    views: SqliteReadModel,
) -> None:
    # Two changes at one version: the second starts a second set of rows, applied after the
    # first in the same transaction, where the version guard refuses it, as one by one would.
    changes: list[ViewChange] = [
        opened_account(),
        AccountChanged("acc-1", 2, balance=5),
        AccountChanged("acc-1", 2, balance=7),
    ]
    await views.apply("accounts", changes, 3)
    account = await views.get_account("acc-1")
    assert account is not None
    assert (account.balance, account.version) == (5, 2)
    assert await views.checkpoint("accounts") == 3


async def test_events_and_views_share_a_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    store, model = SqliteEventStore(data_dir), SqliteReadModel(data_dir)
    await store.start()
    await model.start()
    try:
        await store.append("account-1", 0, [record("account-1", 1)])
        await model.apply("accounts", [], 1)
        assert sorted(p.name for p in data_dir.glob("*.db")) == ["events.db", "views.db"]
    finally:
        await model.close()
        await store.close()


async def test_an_unusable_data_directory_fails_start_with_a_typed_error(tmp_path: Path) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("not a directory")
    for backend in (SqliteEventStore(occupied), SqliteReadModel(occupied)):
        with pytest.raises(StoreUnavailableError):
            await backend.start()
        assert not await backend.ready()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "events.db").write_bytes(b"this is not an SQLite database, not at all" * 100)
    with pytest.raises(StoreUnavailableError):
        await SqliteEventStore(garbage).start()


async def test_batched_jobs_run_once_per_transaction_and_a_failure_is_retried_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    writer = GroupCommitWriter(path, ddl="CREATE TABLE t (n INTEGER);", synchronous="FULL")
    calls: list[list[int]] = []

    def insert_all(connection: sqlite3.Connection, numbers: list[int]) -> list[int | Exception]:
        calls.append(list(numbers))
        connection.executemany("INSERT INTO t VALUES (?)", [(n,) for n in numbers])
        if 13 in numbers:
            raise ValueError("13 is refused")
        # An error for one payload leaves the others' rows in place.
        return [KeyError(n) if n == 7 else n * 10 for n in numbers]

    await writer.start()
    try:
        async with held(writer):  # so that the four are queued before the writer takes any
            futures = [writer.submit_batched(insert_all, n) for n in (1, 7, 13, 2)]
        results = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        await writer.close()

    assert results[0] == 10
    assert isinstance(results[1], KeyError)
    assert isinstance(results[2], ValueError)
    assert results[3] == 20
    assert calls[0] == [1, 7, 13, 2]  # first all together; it raised, so then one by one
    assert calls[1:] == [[1], [7], [13], [2]]
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT n FROM t ORDER BY n").fetchall()
    assert rows == [(1,), (2,), (7,)]


async def test_appends_in_one_batch_are_checked_in_order_and_get_contiguous_positions(
    store: SqliteEventStore,
) -> None:
    a, b = "account-a", "account-b"
    duplicate = record(b, 1)
    await store.append(b, 0, [duplicate])
    taken = msgspec.structs.replace(record(a, 3), event_id=duplicate.event_id)
    batches_before = store._writer.batches
    async with held(store._writer):  # all five in one transaction
        appends = [
            asyncio.ensure_future(append)
            for append in (
                store.append(a, 0, [record(a, 1), record(a, 2)]),
                store.append(a, 2, [taken]),  # follows the first, but its event id is stored
                store.append(a, 2, [record(a, 3)]),  # follows the first
                store.append(a, 0, [record(a, 1)]),  # conflicts with the first
                store.append(b, 1, [record(b, 2)]),
            )
        ]
        await asyncio.sleep(0)  # each append runs up to its submit
    results = await asyncio.gather(*appends, return_exceptions=True)
    assert store._writer.batches - batches_before == 2  # the gate's, and the five's
    first, duplicated, third, conflict, other = results
    assert isinstance(duplicated, ValueError)
    assert isinstance(conflict, ConcurrencyError)
    assert conflict.actual == 3
    assert not isinstance(first, BaseException)
    assert not isinstance(third, BaseException)
    assert not isinstance(other, BaseException)
    acknowledged = [*first, *third, *other]
    stored = await reopened_positions(store, [a, b])
    assert {(r.stream_id, r.version): r.position for r in acknowledged} == {
        (r.stream_id, r.version): r.position for r in stored if r.version > 1 or r.stream_id == a
    }
    assert [r.version for r in stored if r.stream_id == a] == [1, 2, 3]
    positions = sorted(r.position for r in stored)
    assert positions == list(range(positions[0], positions[0] + len(positions)))


@contextlib.asynccontextmanager
async def held(writer: GroupCommitWriter) -> AsyncIterator[None]:
    """Keeps ``writer`` busy with a job that waits until the block ends, so that the jobs
    submitted inside the block all go into the next transaction."""
    gate = threading.Event()
    started = threading.Event()

    def wait(connection: sqlite3.Connection) -> None:
        started.set()
        gate.wait(10)

    blocker = writer.submit(wait)
    await asyncio.to_thread(started.wait, 10)
    try:
        yield
    finally:
        gate.set()
        await blocker


async def reopened_positions(store: SqliteEventStore, streams: list[str]) -> list[EventRecord]:
    return [record for stream in streams for record in await store.read(stream)]


async def test_an_autocommit_batch_alone_runs_outside_a_transaction_and_retries_inside_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    ddl = "CREATE TABLE t (n INTEGER PRIMARY KEY);"
    writer = GroupCommitWriter(path, ddl=ddl, synchronous="FULL")
    seen: list[tuple[list[int], bool]] = []

    def insert_all(connection: sqlite3.Connection, numbers: list[int]) -> list[int | Exception]:
        seen.append((list(numbers), connection.in_transaction))
        try:
            connection.execute(
                "INSERT INTO t SELECT value FROM json_each(?)", (json.dumps(numbers),)
            )
        except sqlite3.IntegrityError:
            if not connection.in_transaction:
                raise
            return [ValueError(n) for n in numbers]
        return [n * 10 for n in numbers]

    def submit(n: int) -> asyncio.Future[int]:
        return writer.submit_batched(insert_all, n, savepoint=False, autocommit=True)

    await writer.start()
    try:
        async with held(writer):
            alone = [submit(1), submit(2)]
        assert await asyncio.gather(*alone) == [10, 20]
        async with held(writer):
            snapshot = writer.submit(lambda c: c.execute("INSERT INTO t VALUES (3)").rowcount)
            mixed = submit(4)
        assert await snapshot == 1
        assert await mixed == 40
        async with held(writer):
            again = [submit(2), submit(5)]  # 2 is stored: the autocommit INSERT is refused
        results = await asyncio.gather(*again, return_exceptions=True)
    finally:
        await writer.close()

    assert seen[0] == ([1, 2], False)  # both alone in their commit: no BEGIN around them
    assert seen[1] == ([4], True)  # beside another job: inside the transaction
    assert seen[2] == ([2, 5], False)  # refused without a transaction, so it wrote nothing...
    assert seen[3] == ([2, 5], True)  # ...and ran again inside one
    assert all(isinstance(result, ValueError) for result in results)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT n FROM t ORDER BY n").fetchall()
    assert rows == [(1,), (2,), (3,), (4,)]


def test_the_events_table_refuses_a_row_that_does_not_continue_its_stream(tmp_path: Path) -> None:
    insert = (
        "INSERT INTO events (stream_id, version, type, schema, event_id, occurred_at, data,"
        " metadata) VALUES (?, ?, 'deposited', 1, ?, 0, '{}', '{}')"
    )
    with contextlib.closing(sqlite3.connect(tmp_path / "events.db")) as connection:
        connection.executescript(EVENTS_DDL)
        connection.execute(insert, ("a", 1, "e1"))
        connection.execute(insert, ("a", 2, "e2"))
        with pytest.raises(sqlite3.IntegrityError, match="does not reach"):
            connection.execute(insert, ("a", 4, "e4"))  # skips version 3
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            connection.execute(insert, ("a", 2, "e2b"))  # version 2 is taken
        with pytest.raises(sqlite3.IntegrityError, match="does not reach"):
            connection.execute(insert, ("b", 2, "b2"))  # a new stream starts at 1
        connection.execute(insert, ("a", 3, "e3"))
        versions = connection.execute("SELECT stream_id, version FROM events").fetchall()
    assert versions == [("a", 1), ("a", 2), ("a", 3)]


async def test_a_stale_append_through_another_store_on_the_same_file_is_refused(
    tmp_path: Path,
) -> None:
    first, second = SqliteEventStore(tmp_path), SqliteEventStore(tmp_path)
    await first.start()
    await second.start()
    try:
        await first.append("account-1", 0, [record("account-1", 1)])
        with pytest.raises(ConcurrencyError) as refused:
            await second.append("account-1", 0, [record("account-1", 1)])
        assert refused.value.actual == 1
        with pytest.raises(ConcurrencyError):  # a gap is refused too
            await second.append("account-1", 2, [record("account-1", 3)])
        await second.append("account-1", 1, [record("account-1", 2)])
        stored = await first.read("account-1")
    finally:
        await second.close()
        await first.close()
    assert [event.version for event in stored] == [1, 2]


async def test_a_job_alone_in_its_commit_runs_without_a_savepoint_and_fails_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    writer = GroupCommitWriter(path, ddl="CREATE TABLE t (n INTEGER);", synchronous="FULL")
    statements: list[str] = []

    def traced(connection: sqlite3.Connection) -> None:
        connection.set_trace_callback(statements.append)

    def insert_two(n: int, fail: bool) -> Callable[[sqlite3.Connection], int]:
        def job(connection: sqlite3.Connection) -> int:
            connection.execute("INSERT INTO t VALUES (?)", (n,))
            connection.execute("INSERT INTO t VALUES (?)", (-n,))
            if fail:
                raise ValueError("refused")
            return n

        return job

    await writer.start()
    try:
        await writer.submit(traced)
        statements.clear()
        assert await writer.submit(insert_two(1, fail=False)) == 1
        with pytest.raises(ValueError, match="refused"):
            await writer.submit(insert_two(2, fail=True))
        assert await writer.submit(insert_two(3, fail=False)) == 3
    finally:
        await writer.close()

    assert not [s for s in statements if s.startswith(("SAVEPOINT", "RELEASE"))]
    assert statements.count("BEGIN IMMEDIATE") == 3
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT n FROM t ORDER BY n").fetchall()
    assert rows == [(-3,), (-1,), (1,), (3,)]  # the failed job left neither of its rows
