"""The Kafka event store: one topic is the source of truth, a local SQLite file indexes it.

- Appends: ``KafkaWriter`` (writer.py) — group commit into Kafka transactions, version check in
  process (one writer process owns the topic), acknowledged after the broker's commit.
- Message: key = stream_id (a stream stays in one partition, in order), value =
  ``encode_record(record)`` (the same JSON as every store keeps, readable by any Kafka client;
  its ``position`` is 0 there), header ``type``.
- Positions: ``offset + 1`` within the record's partition, i.e. the offset a consumer commits
  after it; so positions are > 0 and only comparable within one partition.
- Reads, stream versions and snapshots come from the local index (index.py), which every commit
  of this process and every start-up catch-up keep in step with the topic. An append is answered
  before its index write; reads first wait for the index to hold every answered append.
- ``subscribe``: a consumer group per projection (subscription.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import TypeVar

from confluent_kafka import KafkaException

from core.eventsourcing.checks import check_records
from core.eventsourcing.links import Link
from core.eventsourcing.readers import ReaderPool
from core.eventsourcing.schema import to_micros
from core.ports import EventStore, PipelinedAppends, SnapshotStore
from core.records import EventRecord, Snapshot
from plugins.kafka import index
from plugins.kafka.config import KafkaConfig
from plugins.kafka.subscription import KafkaSubscription
from plugins.kafka.writer import KafkaWriter

__all__ = ["KafkaEventStore"]

_READY_TIMEOUT = 1.0
T = TypeVar("T")


class KafkaEventStore:
    """``EventStore``, ``SnapshotStore`` and ``Lifecycle`` on a Kafka topic.

    Use it from the event loop that started it. ``close`` then ``start`` again is allowed.
    """

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self._writer = KafkaWriter(config)
        self._readers = ReaderPool(config.index_path, config.readers)

    @property
    def writer(self) -> KafkaWriter:
        """Diagnostics: batches, appends, caught_up."""
        return self._writer

    async def start(self) -> None:
        if self._writer.alive:
            return
        self._writer = KafkaWriter(self.config)
        await self._writer.start()
        self._readers = ReaderPool(self.config.index_path, self.config.readers)
        self._readers.start()

    async def close(self) -> None:
        await self._writer.close()
        await self._readers.close()

    async def ready(self) -> bool:
        """True when the writer runs and the broker answers a metadata request within ~1 s."""
        admin = self._writer.admin
        if not self._writer.alive or admin is None:
            return False
        try:
            await asyncio.to_thread(admin.list_topics, self.config.topic, _READY_TIMEOUT)
        except KafkaException:
            return False
        return True

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[EventRecord]
    ) -> Sequence[EventRecord]:
        return await self.enqueue(stream_id, expected_version, events)

    def enqueue(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[EventRecord],
        link: Link | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        """``PipelinedAppends``: the append is in the writer's queue when this returns. The
        writer thread marks its link (transactions.py)."""
        check_records(stream_id, expected_version, events)
        return self._writer.append(stream_id, expected_version, list(events), link)

    async def read(
        self, stream_id: str, after_version: int = 0, until: datetime | None = None
    ) -> list[EventRecord]:
        limit = None if until is None else to_micros(until)
        return await self._read(partial(index.read_stream, stream_id, after_version, limit))

    async def stream_version(self, stream_id: str) -> int:
        return await self._read(partial(index.stream_version, stream_id))

    async def read_command(self, stream_id: str, command_id: str) -> list[EventRecord]:
        return await self._read(partial(index.read_command, stream_id, command_id))

    def subscribe(self, group: str, after_checkpoint: int) -> KafkaSubscription:
        return KafkaSubscription(self.config, group, after_checkpoint)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return await self._read(partial(index.load_snapshot, stream_id))

    async def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """``query`` on a reader, once the index holds every append answered before this call."""
        writer, answered = self._writer, self._writer.answered

        def after_index(connection: sqlite3.Connection) -> T:
            writer.wait_indexed(answered)
            return query(connection)

        return await self._readers.run(after_index)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keeps the newest (snapshots are a local cache: they are not in the topic)."""
        await self._writer.save_snapshot(snapshot)


def _check_protocols(
    store: KafkaEventStore,
) -> tuple[EventStore, SnapshotStore, PipelinedAppends]:
    return store, store, store  # mypy checks the store against the ports here
