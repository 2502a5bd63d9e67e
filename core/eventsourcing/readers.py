"""Queries off the event loop, on a small pool of read connections."""

from __future__ import annotations

import asyncio
import queue
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from core.errors import StoreUnavailableError
from core.eventsourcing.jobs import Job, T, translate_error
from core.eventsourcing.schema import open_connection
from core.threads import name_this_thread

__all__ = ["ReaderPool"]


class ReaderPool:
    """Queries off the event loop: a few threads, each borrowing an idle read connection.

    WAL lets these readers run beside the writer, each seeing the last committed state.
    """

    def __init__(self, path: Path, size: int = 4) -> None:
        self._path = path
        self._size = max(size, 1)
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=self._size,
            thread_name_prefix=f"sqlite-reader:{self._path.name}",
            initializer=name_this_thread,
        )

    async def run(self, query: Job[T]) -> T:
        executor = self._executor
        if executor is None:
            raise StoreUnavailableError(f"SQLite database {self._path} is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, self._call, query)

    def _call(self, query: Job[T]) -> T:
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            # At most ``size`` calls run at once, so at most ``size`` connections are opened.
            try:
                connection = open_connection(self._path, synchronous="NORMAL", writer=False)
            except sqlite3.Error as error:
                raise self._unavailable(error) from error
        try:
            return query(connection)
        except sqlite3.Error as error:
            failure = translate_error(error, self._path)
            if failure is error:
                raise
            raise failure from error
        finally:
            self._idle.put(connection)

    def _unavailable(self, error: sqlite3.Error) -> StoreUnavailableError:
        return StoreUnavailableError(f"SQLite database {self._path} cannot be opened: {error}")

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.to_thread(executor.shutdown, wait=True)
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break
