"""The thread that owns an SQLite file's write connection: the group-commit writer.

The writer is the whole reason SQLite is fast here with ``synchronous=FULL``: a commit costs one
fsync however many appends it carries, so while one batch is being committed the next one queues
up, and under load each fsync acknowledges hundreds of appends. The event loop never waits on
SQLite: it puts a job on a queue and awaits a future that the writer resolves after the commit.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from itertools import groupby
from pathlib import Path
from typing import Final, Literal

from core.errors import StoreUnavailableError
from core.eventsourcing.checkpoints import DEFAULT_PERIOD, WalCheckpointer
from core.eventsourcing.jobs import (
    BatchJob,
    Item,
    Job,
    Outcome,
    P,
    Stop,
    T,
    WrongCount,
    alone,
    call_soon,
    commit_failed,
    mark_failed,
    one_autocommit_batch,
    outcomes_of,
    rollback,
    run_items,
    settle,
    translate_error,
)
from core.eventsourcing.links import Link
from core.eventsourcing.schema import open_connection
from core.threads import name_this_thread

__all__ = ["DEFAULT_MAX_BATCH", "GroupCommitWriter"]

DEFAULT_MAX_BATCH: Final = 1000


class GroupCommitWriter:
    """Runs jobs on one connection in its own thread; every job queued while the previous commit
    was running goes into the next transaction, each inside its own savepoint, so a job that
    raises is rolled back alone and the others still commit.

    A job's future resolves only after the transaction that holds it committed, so a result the
    caller sees is durable. If the commit itself fails, every job of the batch gets
    ``StoreUnavailableError`` and none of them was written.

    WAL checkpoints run in a thread of their own every ``checkpoint_period`` seconds while there
    are commits (``core.eventsourcing.checkpoints``); ``None`` leaves them to SQLite, in the
    commits.
    """

    def __init__(
        self,
        path: Path,
        *,
        ddl: str,
        synchronous: Literal["FULL", "NORMAL"],
        max_batch: int = DEFAULT_MAX_BATCH,
        on_commit: Callable[[], None] | None = None,
        checkpoint_period: float | None = DEFAULT_PERIOD,
    ) -> None:
        self._path = path
        self._ddl = ddl
        self._synchronous = synchronous
        self._max_batch = max(max_batch, 1)
        self._on_commit = on_commit
        self._checkpointer = (
            None
            if checkpoint_period is None
            else WalCheckpointer(path, synchronous=synchronous, period=checkpoint_period)
        )
        self._queue: queue.SimpleQueue[Item | Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False
        self.batches = 0  # committed transactions, for diagnostics
        self.jobs = 0  # jobs in them

    @property
    def checkpoint_passes(self) -> int:
        """Checkpoints the checkpoint thread has run (0 without it), for diagnostics."""
        return 0 if self._checkpointer is None else self._checkpointer.checkpoints

    @property
    def alive(self) -> bool:
        return self._accepting and self._thread is not None and self._thread.is_alive()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        opened: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._run, args=(loop, opened), name=f"sqlite-writer:{self._path.name}"
        )
        self._thread.daemon = True  # an unacknowledged job is all an abrupt exit can lose
        self._thread.start()
        await opened
        self._accepting = True

    def submit(
        self, job: Job[T], *, savepoint: bool = True, autocommit: bool = False
    ) -> asyncio.Future[T]:
        """Queue ``job``; the future resolves on this loop once its transaction committed.

        ``savepoint=False`` is for a job that writes with at most one statement: SQLite undoes a
        failed statement by itself, so the savepoint's two extra statements buy nothing there.
        ``autocommit=True`` (with ``savepoint=False``) is for a job whose one statement is all it
        writes: alone in its commit, it runs without ``BEGIN`` and ``COMMIT`` (see
        ``submit_batched``).
        """
        return self.submit_batched(alone(job), None, savepoint=savepoint, autocommit=autocommit)

    def submit_batched(
        self,
        batch: BatchJob[P, T],
        payload: P,
        *,
        savepoint: bool = True,
        autocommit: bool = False,
        link: Link | None = None,
    ) -> asyncio.Future[T]:
        """Queue ``payload`` for ``batch``, which runs once for all the payloads queued for it in
        the same transaction; the future resolves once that transaction committed.

        If ``batch`` raises, its statements are rolled back and it runs again for each payload
        alone, so one bad payload fails alone, as a plain job would. ``savepoint=False`` is for a
        batch that writes with at most one statement, as for ``submit``.

        ``autocommit=True`` (with ``savepoint=False``) is for a batch whose one write checks
        everything it relies on by itself (constraints, triggers), so it needs no transaction
        around it: when its payloads are all that is queued, it runs without ``BEGIN`` and
        ``COMMIT`` and its statement commits alone, which saves two statements and the two GIL
        hand-offs they cost. If it raises there, it wrote nothing, and it runs again the usual
        way, inside a transaction.

        ``link`` is the payload's place in a chain of appends (``core.eventsourcing.links``):
        if the payload fails, the writer marks it failed before it runs the next batch.
        """
        if not self.alive or self._loop is None:
            raise StoreUnavailableError(f"SQLite database {self._path} is not open")
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(Item(batch, payload, future, savepoint, autocommit and not savepoint, link))
        return future

    async def close(self) -> None:
        """Stop accepting jobs, commit those already queued, then close the connection."""
        if not self.alive or self._loop is None:
            self._accepting = False
            return
        self._accepting = False
        done: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(Stop(done))
        await done

    # -- the writer thread ------------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[None]) -> None:
        name_this_thread()
        connection: sqlite3.Connection | None = None
        try:
            connection = open_connection(self._path, synchronous=self._synchronous, writer=True)
            connection.executescript(self._ddl)
            if self._checkpointer is not None:
                self._checkpointer.start(connection)
        except Exception as error:
            if connection is not None:
                connection.close()
            failure = translate_error(error, self._path)
            loop.call_soon_threadsafe(settle, [(opened, False, failure)])
            return
        checkpointer = self._checkpointer
        loop.call_soon_threadsafe(settle, [(opened, True, None)])
        stop: Stop | None = None
        try:
            while stop is None:
                items: list[Item] = []
                item = self._queue.get()
                while True:
                    if isinstance(item, Stop):
                        stop = item
                        break
                    items.append(item)
                    if len(items) >= self._max_batch:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if items:
                    outcomes = self._commit(connection, items)
                    mark_failed(items, outcomes)
                    call_soon(loop, self._deliver, outcomes)
                    if checkpointer is not None:
                        checkpointer.committed(connection)
        finally:
            if checkpointer is not None:
                checkpointer.stop()  # before the close, whose own checkpoint empties the WAL
            connection.close()
            if stop is not None:
                call_soon(loop, settle, [(stop.done, True, None)])

    def _commit(self, connection: sqlite3.Connection, items: list[Item]) -> list[Outcome]:
        if one_autocommit_batch(items):
            committed = self._autocommit(connection, items)
            if committed is not None:
                return committed
        if len(items) == 1:
            return self._commitalone(connection, items[0])
        outcomes: list[Outcome] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            # Consecutive items of one batch job run together (``_alone`` makes a new job each).
            for _, group in groupby(items, key=lambda item: (item.batch, item.savepoint)):
                outcomes.extend(self._run_batch(connection, list(group)))
            connection.execute("COMMIT")
        except Exception as error:
            rollback(connection)
            return [(item.future, False, commit_failed(error, self._path)) for item in items]
        self.batches += 1
        self.jobs += len(items)
        return outcomes

    def _commitalone(self, connection: sqlite3.Connection, item: Item) -> list[Outcome]:
        """One job alone in its transaction (a read-model apply, mostly): no savepoint, since
        rolling the transaction back undoes the job just as well, and the savepoint's two
        statements would cost two GIL hand-offs."""
        try:
            connection.execute("BEGIN IMMEDIATE")
            results = run_items(connection, [item])
        except Exception as error:
            rollback(connection)
            return [(item.future, False, translate_error(error, self._path))]
        try:
            connection.execute("COMMIT")
        except Exception as error:
            rollback(connection)
            return [(item.future, False, commit_failed(error, self._path))]
        self.batches += 1
        self.jobs += 1
        return outcomes_of([item], results, self._path)

    def _autocommit(
        self, connection: sqlite3.Connection, items: list[Item]
    ) -> list[Outcome] | None:
        """The batch's one write as its own transaction; None if it raised (and so wrote
        nothing), for the caller to run it again inside a transaction."""
        try:
            results = run_items(connection, items)
        except WrongCount as error:  # a bug in the batch job, whose write is committed: no rerun
            return [(item.future, False, error) for item in items]
        except Exception:
            return None
        self.batches += 1
        self.jobs += len(items)
        return outcomes_of(items, results, self._path)

    def _run_batch(self, connection: sqlite3.Connection, items: list[Item]) -> list[Outcome]:
        savepoint = items[0].savepoint
        if savepoint:
            connection.execute("SAVEPOINT batch")
        try:
            results = run_items(connection, items)
        except Exception as error:
            if not connection.in_transaction:
                # SQLite itself rolled the whole transaction back (I/O error, disk full): the
                # jobs before these are gone too.
                raise
            if savepoint:
                connection.execute("ROLLBACK TO batch")
                connection.execute("RELEASE batch")
            if len(items) == 1:
                return [(items[0].future, False, translate_error(error, self._path))]
            # Each payload alone, so that only the one at fault fails.
            return [outcome for item in items for outcome in self._run_batch(connection, [item])]
        if savepoint:
            connection.execute("RELEASE batch")
        return outcomes_of(items, results, self._path)

    def _deliver(self, outcomes: list[Outcome]) -> None:
        settle(outcomes)
        if self._on_commit is not None:
            self._on_commit()
