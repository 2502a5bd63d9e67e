"""The warm standby: every instance reads every partition it does not write, and the owner
directory, as they are committed.

One thread, one ``read_committed`` consumer with partitions assigned by hand: each events
partition that no writer of this instance holds, from the offset the index holds, and the
owners topic (directory.py) from its beginning. Events go into the local index (on a connection
of the thread's own), ownership records into the ``OwnerDirectory``. So reads here see the
other instances' streams (a little behind them), and a take-over has only the partition's last
few records left to read. A partition this instance writes is left to its writer
(``hold``/``release``): the writer indexes its own commits, and reads it to its end when it
takes it over."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from typing import Final

import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from core.eventsourcing.checkpoints import WalCheckpointer
from core.records import EventRecord, decode_record
from core.threads import name_this_thread
from plugins.kafka import index
from plugins.kafka.directory import OwnerDirectory, read_owner
from plugins.kafka.head_start import start_from_heads
from plugins.kafka.local_index import open_writer_connection
from plugins.kafka.topic import KafkaTopic

__all__ = ["Tailer"]

log = logging.getLogger(__name__)

_POLL: Final = 0.2
_PAUSE_AFTER_ERROR: Final = 1.0


class Tailer:
    def __init__(
        self,
        topic: KafkaTopic,
        directory: OwnerDirectory,
        checkpointer: Callable[[], WalCheckpointer | None],
    ) -> None:
        self._topic = topic
        self._config = topic.config
        self._directory = directory
        self._checkpointer = checkpointer
        self._held: set[int] = set()  # partitions a writer of this instance holds
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.indexed = 0  # events this thread added to the index

    def start(self) -> None:
        self._stopping.clear()
        name = f"kafka-tailer:{self._config.topic}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def hold(self, partition: int) -> None:
        """A writer of this instance takes ``partition`` over: stop reading it."""
        with self._lock:
            self._held.add(partition)

    def release(self, partition: int) -> None:
        """This instance no longer writes ``partition``: read it again, from the index's offset."""
        with self._lock:
            self._held.discard(partition)

    def _run(self) -> None:
        name_this_thread()
        while not self._stopping.is_set():
            try:
                self._tail()
            except Exception:
                log.exception("the Kafka tailer failed; it starts again")
                self._stopping.wait(_PAUSE_AFTER_ERROR)

    def _tail(self) -> None:
        config = self._config
        connection = open_writer_connection(config)
        consumer = self._topic.reader("read_committed")
        assigned: set[int] = set()
        try:
            consumer.incremental_assign([TopicPartition(config.owners_topic, 0, OFFSET_BEGINNING)])
            while not self._stopping.is_set():
                with self._lock:
                    held = set(self._held)
                wanted = set(range(self._topic.partitions)) - held
                self._reassign(consumer, connection, assigned, wanted)
                messages = consumer.consume(num_messages=config.batch_size, timeout=_POLL)
                if messages:
                    self._index(connection, messages, held)
        finally:
            with contextlib.suppress(Exception):
                consumer.close()
            connection.close()

    def _reassign(
        self,
        consumer: Consumer,
        connection: sqlite3.Connection,
        assigned: set[int],
        wanted: set[int],
    ) -> None:
        topic = self._config.topic
        dropped, added = assigned - wanted, wanted - assigned
        if dropped:
            consumer.incremental_unassign([TopicPartition(topic, p) for p in sorted(dropped)])
            assigned -= dropped
        if added:
            # A partition the index holds nothing of starts from its stream heads, if any.
            start_from_heads(self._topic, connection, sorted(added), None)
            stored = index.next_offsets(connection)
            consumer.incremental_assign(
                [TopicPartition(topic, p, stored.get(p, OFFSET_BEGINNING)) for p in sorted(added)]
            )
            assigned |= added

    def _index(
        self, connection: sqlite3.Connection, messages: list[Message], held: set[int]
    ) -> None:
        config = self._config
        events: list[tuple[EventRecord, int]] = []
        offsets: dict[int, int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("the Kafka tailer: %s", error)
                continue
            partition, offset = message.partition() or 0, message.offset() or 0
            if message.topic() == config.owners_topic:
                owner = read_owner(message.value(), offset)
                if owner is not None:
                    self._directory.record(owner)
                continue
            if partition in held:
                continue  # its writer took it over meanwhile, and reads it itself
            offsets[partition] = offset + 1
            try:
                record = decode_record(message.value() or b"")
            except msgspec.DecodeError:
                continue  # not an event (the record that ends a transaction left open)
            events.append((msgspec.structs.replace(record, position=offset + 1), partition))
        if not offsets:
            return
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            inserted = index.insert_events(connection, events)
            index.set_offsets(connection, offsets)
        self.indexed += inserted
        checkpointer = self._checkpointer()
        if checkpointer is not None:
            checkpointer.committed(connection)
