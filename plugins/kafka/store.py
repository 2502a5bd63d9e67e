"""The Kafka event store: one topic is the source of truth, a local SQLite file indexes it.

- Ownership: every instance joins the owners' group on the topic (membership.py); each
  partition the group assigns here gets a writer of its own (owners.py), which fences the
  previous owner, reads the partition to its end, announces itself in the owner directory
  (directory.py), and only then accepts appends. ``placement`` says where a stream is written:
  here, at another instance (its advertised URL), or nowhere while its partition moves.
- Appends: ``KafkaWriter`` (writer.py) of the stream's partition — group commit into Kafka
  transactions, version check in process (one writer owns the partition), acknowledged after the
  broker's commit. A stream of a partition written elsewhere raises ``OwnedElsewhereError``; of
  a partition that is moving, ``StreamMovingError``.
- Message: key = stream_id (a stream stays in one partition, in order), value =
  ``encode_record(record)`` (the same JSON as every store keeps, readable by any Kafka client;
  its ``position`` is 0 there), header ``type``. The partition is the Java client's
  (partitioner.py).
- Positions: ``offset + 1`` within the record's partition, i.e. the offset a consumer commits
  after it; so positions are > 0 and only comparable within one partition.
- Reads, stream versions and snapshots come from the local index (index.py), which the writers'
  commits, their take-overs and the tailer (tailer.py: every partition written elsewhere) keep in
  step with the topic. An append is answered before its index write; a read of a stream written
  here first waits for the index to hold every answered append of its partition.
- ``subscribe``: a consumer group per projection (subscription.py).
- A fresh node starts each partition from the stream-heads topic where it can (head_start.py)
  and reads the history below in the background (backfill.py); a read that needs events not
  indexed yet waits for them, a few seconds at most, then raises ``StoreUnavailableError``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Final, TypeVar
from uuid import uuid4

from confluent_kafka import KafkaException

from core.config import ConfigError
from core.diagnostics import Report, Sample
from core.eventsourcing.checks import check_records
from core.eventsourcing.links import Link
from core.eventsourcing.readers import ReaderPool
from core.eventsourcing.schema import to_micros
from core.placement import StreamPlacement
from core.ports import EventStore, PipelinedAppends, SnapshotStore
from core.records import EventRecord, Snapshot
from plugins.kafka import index
from plugins.kafka.backfill import HistoryBackfill, history_read
from plugins.kafka.config import KafkaConfig
from plugins.kafka.directory import OwnerDirectory, create_owners_topic
from plugins.kafka.errors import kafka_unavailable
from plugins.kafka.heads import create_heads_topic
from plugins.kafka.local_index import IndexFile
from plugins.kafka.membership import GroupMembership
from plugins.kafka.owners import PartitionOwners
from plugins.kafka.subscription import KafkaSubscription
from plugins.kafka.tailer import Tailer
from plugins.kafka.topic import KafkaTopic

__all__ = ["KafkaEventStore"]

_READY_TIMEOUT: Final = 1.0
# start() returns once the group's first assignment is taken over, or after this long (the
# partitions then go on moving here in the background; their streams answer "moving").
START_BOUND: Final = 30.0
T = TypeVar("T")


def _count_events(connection: sqlite3.Connection) -> int:
    (count,) = connection.execute("SELECT count(*) FROM events").fetchone()
    return int(count)


class KafkaEventStore:
    """``EventStore``, ``SnapshotStore``, ``EventCount`` and ``Lifecycle`` on a Kafka topic.

    Use it from the event loop that started it. ``close`` then ``start`` again is allowed.
    """

    keeps_heads: Final = True  # each append's ``head`` goes to the stream-heads topic

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self._directory = OwnerDirectory()
        self._owners = PartitionOwners(config, self._directory, instance=uuid4().hex)
        self._readers = ReaderPool(config.index_path, config.readers)
        self._topic: KafkaTopic | None = None
        self._file: IndexFile | None = None
        self._tailer: Tailer | None = None
        self._membership: GroupMembership | None = None
        self._backfill: HistoryBackfill | None = None
        self._started = False

    @property
    def writer(self) -> PartitionOwners:
        """Diagnostics: alive, batches, appends, caught_up, owned partitions, takeovers."""
        return self._owners

    @property
    def placement(self) -> StreamPlacement:
        """Where each stream is written (this instance, another one, or moving)."""
        return self._owners

    @property
    def directory(self) -> OwnerDirectory:
        """The partitions' owners as their ownership records say."""
        return self._directory

    async def start(self) -> None:
        if self._started:
            return
        topic, file = KafkaTopic(self.config), IndexFile(self.config)
        try:
            await asyncio.to_thread(self._open, topic, file)
        except BaseException:
            await asyncio.to_thread(file.close)
            raise
        self._topic, self._file = topic, file
        tailer = self._tailer = Tailer(topic, self._directory, lambda: file.checkpointer)
        tailer.start()
        self._owners.start(topic.partitions, file.checkpointer, tailer)
        self._readers = ReaderPool(self.config.index_path, self.config.readers)
        self._readers.start()
        self._started = True
        if self.config.owner:
            membership = GroupMembership(topic, self._owners.assigned, self._owners.revoked)
            self._membership = membership
            membership.start()
            await self._owners.settled(START_BOUND)
        # After the take-overs, so that reading the history never delays the first writes.
        backfill = self._backfill = HistoryBackfill(topic, lambda: file.checkpointer)
        backfill.start()

    def _open(self, topic: KafkaTopic, file: IndexFile) -> None:
        topic_id = topic.open()
        if topic.admin is None:
            raise kafka_unavailable("the Kafka admin client is not open")
        create_owners_topic(topic.admin, self.config)
        create_heads_topic(topic.admin, self.config, topic.partitions)
        heads, _ = topic.describe(self.config.heads_topic)
        if heads != topic.partitions:  # a stream's head lives in its events' partition number
            raise ConfigError(
                f"topic {self.config.heads_topic} has {heads} partitions and "
                f"{self.config.topic} {topic.partitions}: they must be equal (delete "
                f"{self.config.heads_topic}: it is re-created and filled from the events)"
            )
        file.open(topic_id)

    async def close(self) -> None:
        self._started = False
        membership, self._membership = self._membership, None
        if membership is not None:
            await asyncio.to_thread(membership.stop)  # hands every partition back first
        await self._owners.close()
        backfill, self._backfill = self._backfill, None
        if backfill is not None:
            await asyncio.to_thread(backfill.stop)
        tailer, self._tailer = self._tailer, None
        if tailer is not None:
            await asyncio.to_thread(tailer.stop)
        await self._readers.close()
        file, self._file = self._file, None
        if file is not None:
            await asyncio.to_thread(file.close)

    async def ready(self) -> bool:
        """True when the store runs (its group membership too) and the broker answers a
        metadata request within ~1 s."""
        topic, membership = self._topic, self._membership
        if not self._started or topic is None or topic.admin is None or not self._owners.alive:
            return False
        if self.config.owner and (membership is None or not membership.alive):
            return False
        try:
            await asyncio.to_thread(topic.admin.list_topics, self.config.topic, _READY_TIMEOUT)
        except KafkaException:
            return False
        return True

    def report(self) -> Report:
        """For /health/ready and /metrics: the partitions this instance owns (each caught up,
        or still being taken over), its take-overs, and each partition's owner by the
        directory."""
        owned = self._owners.owned()
        details = {
            "takeovers": self._owners.takeovers,
            "owners": {str(p): o.url for p, o in sorted(self._directory.owners().items())},
        }
        caught_up = sum(owned.values())
        samples = [
            Sample(
                "kafka_owned_partitions",
                "Partitions of the events topic assigned to this instance, by caught_up "
                "(taken over and accepting appends, or being taken over)",
                value,
                labels={"caught_up": flag},
            )
            for flag, value in (("true", caught_up), ("false", len(owned) - caught_up))
        ]
        samples += [
            Sample(
                "kafka_partition_caught_up",
                "1 for a partition this instance writes, 0 while it takes the partition over",
                float(caught),
                labels={"partition": str(p)},
            )
            for p, caught in owned.items()
        ]
        samples.append(
            Sample(
                "kafka_takeovers",
                "Partitions this instance has taken over since it started",
                self._owners.takeovers,
                kind="counter",
            )
        )
        return Report(details, samples, owned)

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
        *,
        head: Snapshot | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        """``PipelinedAppends``: the append is in the writer's queue when this returns. The
        writer thread marks its link (transactions.py)."""
        check_records(stream_id, expected_version, events)
        return self._owners.append(stream_id, expected_version, list(events), link, head)

    async def read(
        self, stream_id: str, after_version: int = 0, until: datetime | None = None
    ) -> list[EventRecord]:
        limit = None if until is None else to_micros(until)
        query = partial(index.read_stream, stream_id, after_version, limit)
        return await history_read(partial(self._read, stream_id), stream_id, after_version, query)

    async def stream_version(self, stream_id: str) -> int:
        return await self._read(stream_id, partial(index.stream_version, stream_id))

    async def read_command(self, stream_id: str, command_id: str) -> list[EventRecord]:
        query = partial(index.read_command, stream_id, command_id)
        return await history_read(partial(self._read, stream_id), stream_id, 0, query)

    async def event_count(self) -> int:
        """The events in the local index: every committed append of the topic read so far (a
        store that started from the stream heads counts the history once it has read it)."""
        waits = [(w.index_waits, w.index_waits.answered) for w in self._owners.writers()]

        def after_index(connection: sqlite3.Connection) -> int:
            # Every append this instance answered before the call is counted, as a read sees it.
            for index_waits, answered in waits:
                index_waits.wait_indexed(answered)
            return _count_events(connection)

        return await self._readers.run(after_index)

    def subscribe(self, group: str, after_checkpoint: int) -> KafkaSubscription:
        return KafkaSubscription(self.config, group, after_checkpoint)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return await self._read(stream_id, partial(index.load_snapshot, stream_id))

    async def history_pending(self) -> dict[int, int]:
        """The partitions whose history is still being read (each with the offset it is read
        up to), after a start from the stream-heads topic."""
        return await self._readers.run(index.history_pending)

    async def _read(self, stream_id: str, query: Callable[[sqlite3.Connection], T]) -> T:
        """``query`` on a reader; where this instance writes the stream, once the index holds
        every append of its partition answered before this call."""
        writer = self._owners.writer_of(stream_id)
        if writer is None:
            return await self._readers.run(query)
        waits = writer.index_waits
        answered = waits.answered

        def after_index(connection: sqlite3.Connection) -> T:
            waits.wait_indexed(answered)
            return query(connection)

        return await self._readers.run(after_index)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keeps the newest (snapshots are a local cache: they are not in the topic). Where
        another instance writes the stream, nothing is kept here."""
        saved = self._owners.save_snapshot(snapshot)
        if saved is not None:
            await saved


def _check_protocols(
    store: KafkaEventStore,
) -> tuple[EventStore, SnapshotStore, PipelinedAppends]:
    return store, store, store  # mypy checks the store against the ports here
