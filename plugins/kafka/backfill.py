"""The history of the partitions that started from the stream-heads topic (head_start.py), read
into the index in the background.

One thread, one ``read_committed`` consumer: each partition whose ``meta`` says that its events
below offset R are not indexed yet is read from its beginning up to R, with ``INSERT OR
IGNORE`` (the partition's next offset never moves back: the offsets trigger keeps the highest),
and ``meta`` then says its history is complete, so a restart does not read it again. Until then
the reads that need those events wait for them (``KafkaEventStore``), with a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import msgspec
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition

from core.errors import StoreUnavailableError
from core.eventsourcing.checkpoints import WalCheckpointer
from core.records import EventRecord, decode_record
from plugins.kafka import index
from plugins.kafka.local_index import open_writer_connection
from plugins.kafka.topic import KafkaTopic

__all__ = ["HISTORY_WAIT", "HistoryBackfill", "history_read"]

log = logging.getLogger(__name__)

_LOOK_EVERY: Final = 0.5  # seconds between looks for a partition whose history is missing
_PAUSE_AFTER_ERROR: Final = 1.0
# A read that needs history not indexed yet waits this long for it, then gets 503.
HISTORY_WAIT: Final = 5.0
_HISTORY_LOOK: Final = 0.05
T = TypeVar("T")
Query = Callable[[sqlite3.Connection], T]


async def history_read(
    read: Callable[[Query[tuple[T] | None]], Awaitable[tuple[T] | None]],
    stream_id: str,
    after_version: int,
    query: Query[T],
) -> T:
    """``query`` (run by ``read`` on a reader of the index), once the index holds every event
    of the stream after ``after_version``: at once, unless its partition started from the
    stream-heads topic and the history it needs is still being read; then once it is, or
    StoreUnavailableError after ``HISTORY_WAIT``."""

    def checked(connection: sqlite3.Connection) -> tuple[T] | None:
        if index.history_missing(stream_id, after_version, connection):
            return None
        return (query(connection),)

    deadline = time.monotonic() + HISTORY_WAIT
    while True:
        answer = await read(checked)
        if answer is not None:
            return answer[0]
        if time.monotonic() > deadline:
            raise StoreUnavailableError(
                f"the history of {stream_id} is still being read into this instance's index "
                "(it started from the stream heads); try again shortly"
            )
        await asyncio.sleep(_HISTORY_LOOK)


class HistoryBackfill(threading.Thread):
    """The thread; a store starts a new one with each start."""

    def __init__(
        self, topic: KafkaTopic, checkpointer: Callable[[], WalCheckpointer | None]
    ) -> None:
        super().__init__(name=f"kafka-history:{topic.config.topic}", daemon=True)
        self._topic = topic
        self._config = topic.config
        self._checkpointer = checkpointer
        self._stopping = threading.Event()
        self.indexed = 0  # events of the history this thread added to the index
        self.completed: set[int] = set()  # partitions whose history it read to the end

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._watch()
            except Exception:
                log.exception("reading the history into the Kafka index failed; it starts again")
                self._stopping.wait(_PAUSE_AFTER_ERROR)

    def _watch(self) -> None:
        connection = open_writer_connection(self._config)
        try:
            while not self._stopping.is_set():
                pending = index.history_pending(connection)
                if pending:
                    self._read(connection, pending)
                else:
                    self._stopping.wait(_LOOK_EVERY)
        finally:
            connection.close()

    def _read(self, connection: sqlite3.Connection, pending: dict[int, int]) -> None:
        """Each of ``pending``'s partitions from its beginning up to its offset."""
        config = self._config
        consumer = self._topic.reader("read_committed")
        left = dict(pending)
        try:
            consumer.assign([TopicPartition(config.topic, p, OFFSET_BEGINNING) for p in left])
            while left and not self._stopping.is_set():
                messages = consumer.consume(num_messages=config.batch_size, timeout=0.2)
                if messages:
                    self._index(connection, messages, left)
        except KafkaException as error:
            log.warning("reading the history of %s: %s", config.topic, error)
            self._stopping.wait(_PAUSE_AFTER_ERROR)
        finally:
            with contextlib.suppress(Exception):
                consumer.close()

    def _index(
        self, connection: sqlite3.Connection, messages: list[Message], left: dict[int, int]
    ) -> None:
        events: list[tuple[EventRecord, int]] = []
        done: set[int] = set()
        for message in messages:
            partition, offset = message.partition() or 0, message.offset() or 0
            below = left.get(partition)
            if below is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                done.add(partition)  # the end of the partition: nothing more below R
                continue
            if offset >= below:
                done.add(partition)
                continue
            if offset + 1 >= below:
                done.add(partition)
            try:
                record = decode_record(message.value() or b"")
            except msgspec.DecodeError:
                continue  # not an event (the record that ends a transaction left open)
            events.append((msgspec.structs.replace(record, position=offset + 1), partition))
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            inserted = index.insert_events(connection, events)
            for partition in done:
                index.complete_history(connection, partition)
        self.indexed += inserted
        for partition in done:
            del left[partition]
            self.completed.add(partition)
            log.info("%s[%d]: its history is indexed", self._config.topic, partition)
        checkpointer = self._checkpointer()
        if checkpointer is not None:
            checkpointer.committed(connection)
