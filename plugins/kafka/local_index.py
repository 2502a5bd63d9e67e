"""The local index file, and a partition writer's side of it.

``IndexFile`` opens the file once per store: its tables, the check that it indexes this topic
(and this incarnation of it), and the one thread that checkpoints its WAL. ``LocalIndex`` is a
partition writer's write connection (each writer has its own; SQLite lets one write at a time
and ``busy_timeout`` makes the others wait), its cache of stream versions, the writes of
committed batches and snapshots, and the catch-up of its partition whenever the index may lag
the topic."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence

from core.errors import StoreUnavailableError
from core.eventsourcing.checkpoints import (
    BACKSTOP_PAGES,
    DEFAULT_PERIOD,
    WAL_SIZE_LIMIT,
    WalCheckpointer,
)
from core.eventsourcing.schema import open_connection
from core.records import EventRecord
from plugins.kafka import index
from plugins.kafka.catch_up import catch_up
from plugins.kafka.config import KafkaConfig
from plugins.kafka.errors import kafka_unavailable
from plugins.kafka.requests import Outcome, SaveSnapshot
from plugins.kafka.topic import KafkaTopic

__all__ = ["IndexFile", "LocalIndex", "open_writer_connection"]

log = logging.getLogger(__name__)


def open_writer_connection(config: KafkaConfig) -> sqlite3.Connection:
    """A write connection on the index; its own checkpoints only as the backstop (the
    checkpointer's thread copies the WAL)."""
    connection = open_connection(config.index_path, synchronous="NORMAL", writer=True)
    connection.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
    connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    return connection


class IndexFile:
    """The index file of a store: opened (and emptied when it indexes another topic) before
    any writer or the tailer starts; its WAL checkpointed by one thread for all of them."""

    def __init__(self, config: KafkaConfig) -> None:
        self._config = config
        self.checkpointer: WalCheckpointer | None = None
        self._connection: sqlite3.Connection | None = None

    def open(self, topic_id: str) -> None:
        config = self._config
        config.index_path.parent.mkdir(parents=True, exist_ok=True)
        connection = open_connection(config.index_path, synchronous="NORMAL", writer=True)
        self._connection = connection
        connection.executescript(index.INDEX_DDL)
        # The index's WAL is checkpointed off the writers' threads, as the SQLite store's is:
        # SQLite's own checkpoint, inside an index write, held up the answer to a whole batch.
        checkpointer = WalCheckpointer(
            config.index_path, synchronous="NORMAL", period=DEFAULT_PERIOD
        )
        checkpointer.start(connection)
        self.checkpointer = checkpointer
        # The index is only valid for the topic (and its incarnation) it was built from.
        if (index.meta(connection, "topic"), index.meta(connection, "topic_id")) != (
            config.topic,
            topic_id,
        ):
            with connection:
                connection.execute("BEGIN IMMEDIATE")
                index.clear(connection)
                index.set_meta(connection, "topic", config.topic)
                index.set_meta(connection, "topic_id", topic_id)

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()  # before the close, whose own checkpoint empties the WAL
            self.checkpointer = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class LocalIndex:
    def __init__(
        self,
        config: KafkaConfig,
        partitions: Sequence[int] | None = None,
        checkpointer: WalCheckpointer | None = None,
    ) -> None:
        self._config = config
        self._partitions = None if partitions is None else list(partitions)
        self._checkpointer = checkpointer
        self._connection: sqlite3.Connection | None = None
        self._versions: dict[str, int] = {}  # stream → committed version (a cache of the index)
        self.stale = True  # re-read the partitions' tail before the next append
        self.caught_up = 0  # events indexed by catch-ups (take-overs and resyncs)

    def open(self, topic: KafkaTopic) -> None:
        """Open a write connection on the index (``IndexFile`` made it) and the topic. The
        partitions are caught up by the take-over (writer.py), after ``init_transactions``."""
        self._connection = open_writer_connection(self._config)
        topic.open()

    def release(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreUnavailableError(f"{self._config.index_path} is not open")
        return self._connection

    def mark_stale(self) -> None:
        """The index may not hold what the topic holds: catch up before the next append."""
        self.stale = True
        self._versions.clear()

    def catch_up(self, topic: KafkaTopic, deadline: float | None) -> None:
        catch_up(topic, self.connection(), deadline, self._caught_up, self._partitions)
        self._versions.clear()

    def _caught_up(self, events: int) -> None:
        self.caught_up += events
        self.committed()

    def version(self, stream_id: str) -> int:
        version = self._versions.get(stream_id)
        if version is None:
            version = index.stream_version(stream_id, self.connection())
            self._versions[stream_id] = version
        return version

    def advance(self, stream_id: str, version: int) -> None:
        self._versions[stream_id] = version

    def find_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        return index.find_event_ids(self.connection(), list(event_ids))

    def write(self, events: list[tuple[EventRecord, int]]) -> None:
        """A committed batch (with each record's partition), after its answers."""
        try:
            # One statement, committed alone: it also moves the offsets (a trigger).
            index.insert_events(self.connection(), events)
        except sqlite3.Error:
            # Kafka has them (the source of truth): they stay acknowledged, and are re-read
            # into the index before the next batch. The versions stay right meanwhile.
            log.exception("could not index a committed Kafka batch; will re-read the topic")
            self.stale = True

    def save_snapshots(self, items: list[SaveSnapshot]) -> list[Outcome]:
        connection = self.connection()
        try:
            with connection:
                connection.execute("BEGIN IMMEDIATE")
                for item in items:
                    index.save_snapshot(item.snapshot, connection)
        except sqlite3.Error as error:
            failure = kafka_unavailable("cannot save the snapshot", error)
            return [(item.future, False, failure) for item in items]
        return [(item.future, True, None) for item in items]

    def committed(self) -> None:
        """After a write to the index (and after the answers it holds are on their way)."""
        if self._checkpointer is not None and self._connection is not None:
            self._checkpointer.committed(self._connection)
