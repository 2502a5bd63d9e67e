"""WAL checkpoints in a thread of their own, off the group-commit writer's path.

In WAL mode every commit appends the pages it changed to the ``-wal`` file, and a checkpoint
copies them back into the database file and syncs it. SQLite's default runs that checkpoint
inside the commit that pushes the WAL past 1,000 pages, on the writer's thread: every few
hundred deposits one commit also copied 4 MB and waited for an fsync, and every append queued
behind it waited too. And with pages spread over many accounts, most of them were copied once
per write.

Here this thread checkpoints on a connection of its own: once commits have been made, it waits
``period`` for more to gather (a page written many times in that window is copied once), then
runs ``PASSIVE`` checkpoints, which never block the writer or the readers. Under steady load
the writer has appended more by the time one ends, and SQLite only starts the WAL over when a
write finds it wholly copied. So this thread runs them again, each copying what was appended
during the last, until one copies at most ``FINISH_FRAMES`` pages; then the writer copies the
rest itself between two commits (a few pages and a short fsync), and its next commit starts the
WAL from the top.
The writer keeps SQLite's own checkpoint as a backstop at ``BACKSTOP_PAGES``, so the WAL stays
bounded even if this thread falls behind or fails.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Final, Literal

from core.eventsourcing.schema import open_connection
from core.threads import name_this_thread

__all__ = ["BACKSTOP_PAGES", "DEFAULT_PERIOD", "WalCheckpointer"]

log = logging.getLogger(__name__)

DEFAULT_PERIOD: Final = 0.2
# The writer's own automatic checkpoint (SQLite's ``wal_autocheckpoint``, in pages), for when
# this thread cannot keep up; and the size the WAL file is truncated back to after that.
BACKSTOP_PAGES: Final = 16_384
WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024
# A pass that copied this few pages leaves the writer about as few; at most MAX_PASSES a round.
FINISH_FRAMES: Final = 256
MAX_PASSES: Final = 8


class WalCheckpointer:
    """Checkpoints ``path``'s WAL ``period`` seconds after commits, until ``stop``."""

    def __init__(
        self, path: Path, *, synchronous: Literal["FULL", "NORMAL"], period: float
    ) -> None:
        self._path = path
        # A checkpoint syncs as its connection's ``synchronous`` says: the writer's setting.
        self._synchronous = synchronous
        self._period = period
        self._committed = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._finish = False  # the WAL is nearly all copied: the writer copies the rest
        self._copied = 0  # WAL frames copied when the last pass ended
        self.checkpoints = 0  # for diagnostics

    def start(self, writer: sqlite3.Connection) -> None:
        """Leave the writer's checkpoints to this thread (SQLite's own stays as the backstop)
        and start it."""
        writer.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        writer.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        self._thread = threading.Thread(
            target=self._run, name=f"sqlite-checkpoints:{self._path.name}", daemon=True
        )
        self._thread.start()

    def committed(self, connection: sqlite3.Connection) -> None:
        """Called by the writer, on its connection, after each commit (its jobs' futures are
        already on their way): copies the WAL's last pages when this thread asks for it."""
        self._committed.set()
        if self._finish:
            self._finish = False
            self._copied = 0  # copied whole, the WAL starts over at the next commit
            try:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as error:  # the next commit reports a failing disk
                log.warning("checkpoint of %s failed: %s", self._path, error)

    def stop(self) -> None:
        """Ends the thread (its last checkpoint, if one is running, completes first)."""
        self._stopping.set()
        self._committed.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        name_this_thread()
        try:
            connection = open_connection(self._path, synchronous=self._synchronous, writer=True)
        except sqlite3.Error as error:
            log.warning("no background checkpoints for %s: %s", self._path, error)
            return
        try:
            while True:
                self._committed.wait()
                if self._stopping.wait(self._period):
                    return
                self._committed.clear()  # commits from here on call for the next checkpoint
                if self._stopping.is_set():
                    return  # stop() came just before the clear, which undid its wake-up
                self._catch_up(connection)
        finally:
            connection.close()

    def _catch_up(self, connection: sqlite3.Connection) -> None:
        for _ in range(MAX_PASSES):
            try:
                row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as error:
                # Another process checkpointing, or a failing disk that the writer's own commits
                # report to their callers: this one is retried after the next commit.
                log.warning("checkpoint of %s failed: %s", self._path, error)
                return
            self.checkpoints += 1
            busy, frames, copied = row  # ``copied``: of the WAL's frames, since it started over
            if busy or frames < 0:
                return  # another connection holds the checkpoint lock: try after the period
            if copied < self._copied:
                self._copied = 0  # the WAL started over since the last pass
            this_pass, self._copied = copied - self._copied, copied
            if this_pass <= FINISH_FRAMES:
                self._finish = True
                return
