"""The partitions this instance writes: one ``KafkaWriter`` per owned partition, taken over
when the owners' group assigns it and let go when the group takes it back; and where every
stream is written (``place``, the store's ``StreamPlacement``).

A partition goes through: assigned (the group gave it: ``Moving`` until the take-over ends) →
owned (its writer fenced the previous owner, read the partition to its end and announced
itself in the owner directory: ``Here``, appends accepted) → revoked, lost, or fenced (a newer
producer's ``init_transactions`` made a call fail: the writer ends). A revoked or lost partition
is not written again until the group assigns it again. A fenced one that the group still
assigns here is taken back later (take_overs.py, which runs the take-overs), unless an owner's
record newer than ours names another instance: the producer that fenced it was a zombie's,
woken from a pause before its membership heard that the partition had moved.
Every partition writer commits in parallel with the others, each with its own group commit.

Runs on the event loop that started the store; the group's callbacks come from the
membership's thread (``assigned``, ``revoked``), a fencing from a writer's thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final

from confluent_kafka import Producer

from core.errors import OwnedElsewhereError, StoreUnavailableError, StreamMovingError
from core.eventsourcing.checkpoints import WalCheckpointer
from core.eventsourcing.links import Link
from core.placement import HERE, Elsewhere, Moving, Placement
from core.records import EventRecord, Snapshot
from plugins.kafka.config import KafkaConfig
from plugins.kafka.directory import Owner, OwnerDirectory, announce
from plugins.kafka.errors import kafka_unavailable
from plugins.kafka.partitioner import partition_of
from plugins.kafka.tailer import Tailer
from plugins.kafka.take_overs import TakeOvers
from plugins.kafka.writer import KafkaWriter

__all__ = ["PartitionOwners"]

log = logging.getLogger(__name__)

RETRY_AFTER: Final = 1.0  # what a caller is told to wait while a partition moves
_REVOKE_BOUND: Final = 60.0  # the group waits this long at most for a revocation to finish


class PartitionOwners:
    def __init__(self, config: KafkaConfig, directory: OwnerDirectory, instance: str) -> None:
        self._config = config
        self._directory = directory
        self.instance = instance
        self.partitions = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checkpointer: WalCheckpointer | None = None
        self._tailer: Tailer | None = None
        self._writers: dict[int, KafkaWriter] = {}  # owned: taken over, accepting appends
        self._assigned: set[int] = set()  # given by the group, and not taken back since
        # The epoch of this instance's ownership record of each partition it took over: a
        # record of another instance with a later one means it took the partition over since.
        self._announced: dict[int, int] = {}
        self._takes = TakeOvers(self)
        self._history: list[KafkaWriter] = []  # every writer started, for the diagnostics
        self._assignments = 0  # assignments received from the group
        self._settled = asyncio.Event()  # the first assignment is taken over
        self._open = False
        self.takeovers = 0  # partitions taken over since the start
        self._gained: list[Callable[[], None]] = []  # told after each take-over

    @property
    def retake_after(self) -> float:
        """How long a fenced partition still assigned here stays unwritten (take_overs.py)."""
        return self._takes.retake_after

    @retake_after.setter
    def retake_after(self, seconds: float) -> None:
        self._takes.retake_after = seconds

    # -- diagnostics (the store's ``writer``) -------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._open and all(w.alive for w in self._writers.values())

    @property
    def batches(self) -> int:
        return sum(w.batches for w in self._history)

    @property
    def appends(self) -> int:
        return sum(w.appends for w in self._history)

    @property
    def caught_up(self) -> int:
        """Events read from the topic into the index: by the take-overs and by the tailer."""
        tailed = 0 if self._tailer is None else self._tailer.indexed
        return sum(w.caught_up for w in self._history) + tailed

    def owned(self) -> dict[int, bool]:
        """The partitions the group assigned here, and whether each is taken over (caught up
        and accepting appends) or still being taken over."""
        return {
            p: p in self._writers and self._writers[p].alive
            for p in sorted(self._assigned)
            if self.owns(p)
        }

    # -- placement ----------------------------------------------------------------------------

    def on_gained(self, callback: Callable[[], None]) -> None:
        """``callback`` is called on the event loop after each partition taken over here
        (``core.placement.GainsWrites``)."""
        self._gained.append(callback)

    def place(self, stream_id: str) -> Placement:
        if self.partitions == 0:
            return Moving(RETRY_AFTER)
        partition = partition_of(stream_id, self.partitions)
        writer = self._writers.get(partition)
        if writer is not None and writer.alive and self.owns(partition):
            return HERE
        if self.owns(partition):
            return Moving(RETRY_AFTER)  # being taken over here
        owner = self._directory.owner(partition)
        if owner is None or owner.instance == self.instance:
            return Moving(RETRY_AFTER)  # nobody, or this instance until a moment ago
        return Elsewhere(owner.url)

    def writers(self) -> list[KafkaWriter]:
        """The writers of the partitions this instance writes now."""
        return list(self._writers.values())

    def writer_of(self, stream_id: str) -> KafkaWriter | None:
        """The writer of the stream's partition, if this instance writes it."""
        if self.partitions == 0:
            return None
        return self._writers.get(partition_of(stream_id, self.partitions))

    def append(
        self,
        stream_id: str,
        expected: int,
        records: Sequence[EventRecord],
        link: Link | None = None,
        head: Snapshot | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        writer = self.writer_of(stream_id)
        if writer is None or not writer.alive or not self.owns(writer.partition):
            if not self._open:
                raise kafka_unavailable(f"the Kafka event store ({self._config.topic}) is closed")
            raise self._not_here(stream_id)
        return writer.append(stream_id, expected, records, link, head)

    def save_snapshot(self, snapshot: Snapshot) -> asyncio.Future[None] | None:
        """The snapshot to the stream's writer; None where this instance does not write the
        stream (snapshots are a local cache: its owner keeps its own)."""
        writer = self.writer_of(snapshot.stream_id)
        if writer is None or not writer.alive:
            return None
        return writer.save_snapshot(snapshot)

    def _not_here(self, stream_id: str) -> StoreUnavailableError:
        placement = self.place(stream_id)
        if isinstance(placement, Elsewhere):
            return OwnedElsewhereError(stream_id, placement.url)
        retry = placement.retry_after if isinstance(placement, Moving) else RETRY_AFTER
        return StreamMovingError(stream_id, retry)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, partitions: int, checkpointer: WalCheckpointer | None, tailer: Tailer) -> None:
        self._loop = asyncio.get_running_loop()
        self.partitions = partitions
        self._checkpointer = checkpointer
        self._tailer = tailer
        self._takes.start(self._loop, tailer)
        self._history = []
        self._assignments = 0
        self._settled = asyncio.Event()
        self._open = True

    async def settled(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until the group's first assignment is taken over."""
        try:
            async with asyncio.timeout(timeout):
                await self._settled.wait()
        except TimeoutError:
            return False
        return True

    def _check_settled(self) -> None:
        if self._assignments and not self._takes.any():
            self._settled.set()

    async def close(self) -> None:
        """After the group membership ended: whatever is still written here stops."""
        self._open = False
        self._assigned.clear()
        for task in self._takes.tasks():
            with contextlib.suppress(Exception):
                await task
        writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            await writer.close()

    # -- the group's decisions (membership thread) -------------------------------------------

    def assigned(self, partitions: list[int]) -> None:
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._assign, partitions)

    def revoked(self, partitions: list[int]) -> None:
        """Returns once the partitions' writers have finished their batch and stopped."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        done = asyncio.run_coroutine_threadsafe(self._revoke(partitions), loop)
        try:
            done.result(_REVOKE_BOUND)
        except Exception:
            log.exception("stopping the writers of partitions %s failed", partitions)

    # -- on the event loop --------------------------------------------------------------------

    def _assign(self, partitions: list[int]) -> None:
        self._assignments += 1
        if not self._open or self._loop is None:
            return
        for partition in partitions:
            self._assigned.add(partition)
            self._announced.pop(partition, None)
            self._takes.take(partition)
        self._check_settled()

    # -- what a take-over reads and tells (take_overs.Owning) --------------------------------

    @property
    def open(self) -> bool:
        return self._open

    def assigned_here(self, partition: int) -> bool:
        return partition in self._assigned

    def writes(self, partition: int) -> bool:
        return partition in self._writers

    def new_writer(self, partition: int) -> KafkaWriter:
        return KafkaWriter(
            self._config,
            partition,
            checkpointer=self._checkpointer,
            announce=self._announce,
            lost=self._lost_from_thread,
            owns=partial(self.owns, partition),
        )

    async def taken(self, partition: int, writer: KafkaWriter) -> None:
        """``writer`` has taken ``partition`` over: it writes it now, unless the group took the
        partition back meanwhile."""
        self._history.append(writer)
        if self._open and partition in self._assigned:
            self._writers[partition] = writer
            self.takeovers += 1
            log.info("partition %d taken over", partition)
            self._tell_gained()
        else:
            await writer.close()  # revoked while it was being taken over

    def ended(self, partition: int) -> None:
        """A take-over of ``partition`` ended, taken over or not."""
        self._settle(partition)
        self._check_settled()

    def forget_announcement(self, partition: int) -> None:
        self._announced.pop(partition, None)

    def _tell_gained(self) -> None:
        for callback in self._gained:
            try:
                callback()
            except Exception:
                log.exception("a take-over listener failed")

    def owns(self, partition: int) -> bool:
        """Whether ``partition`` is still this instance's: assigned by the group, and no other
        instance has announced itself its owner since (we would be a zombie, whose group
        membership has not heard yet). Any thread."""
        if partition not in self._assigned:
            return False
        announced = self._announced.get(partition)
        owner = self._directory.owner(partition)
        if announced is None or owner is None or owner.instance == self.instance:
            return True  # (being taken over: fencing protects it)
        return owner.epoch <= announced

    def _announce(self, producer: Producer, partition: int) -> None:
        """On the writer's thread, once the partition is caught up."""
        owner = Owner(partition, self._config.advertised_url, self.instance)
        self._announced[partition] = announce(producer, self._config, owner, None)

    async def _revoke(self, partitions: list[int]) -> None:
        for partition in partitions:
            self._assigned.discard(partition)
            # A take-over still under way ends first: its ``init_transactions`` must not come
            # after the group has given the partition to another instance (it would fence it).
            taking = self._takes.task(partition)
            if taking is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(taking)
            writer = self._writers.pop(partition, None)
            if writer is not None:
                await writer.close()  # the open batch is finished and answered first
            self._settle(partition)

    def _lost_from_thread(self, writer: KafkaWriter) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._fenced, writer)

    def _fenced(self, writer: KafkaWriter) -> None:
        """A newer producer fenced the writer: nothing is written here until it is taken back."""
        partition = writer.partition
        log.warning("partition %d: fenced by a newer owner; no longer written here", partition)
        if self._writers.get(partition) is writer:
            del self._writers[partition]
            self._takes.take_back_later(partition)
        self._settle(partition)

    def _settle(self, partition: int) -> None:
        """A partition neither written nor being taken over here is read by the tailer again."""
        if partition in self._writers or self._takes.under_way(partition):
            return
        if self._tailer is not None:
            self._tailer.release(partition)
