"""A partition's writer thread: owns the partition's transactional producer and a write
connection to the local index.

Group commit, Kafka style. Appends queue up with a future each; the thread drains the queue,
checks every append's expected version against the per-stream version index (in memory, backed
by the local index), produces the accepted appends' records in ONE Kafka transaction, commits it
once, resolves the futures, and then writes the records into the local index. So:

- a multi-event append is atomic (one transaction; consumers read ``read_committed``);
- an append is acknowledged only after the broker acknowledged the transaction and the
  partition shows its commit marker (transactions.py);
- reads wait for the index (index_waits.py): one that starts after an acknowledgement sees
  what was acknowledged, though the answer did not wait for the index write;
- if the transaction fails, every append in it gets ``StoreUnavailableError``, the version index
  does not move, and nothing of it becomes visible to ``read_committed`` readers (the broker
  aborts it: explicitly, on the next ``init_transactions`` of the same ``transactional.id``, or
  after ``transaction.timeout.ms``);
- no exception ends the thread: a batch that fails in any way is refused (what it has not
  answered gets ``StoreUnavailableError``) and the producer is rebuilt, at the next append or
  within a second of idleness; a new producer ends a transaction that a broker restart left
  open on a partition (hanging.py) and re-reads the topic's tail before the next version check.

The version check is exact because ONE writer owns the partition (owners.py, docs/kafka.md):
it takes the partition over (``init_transactions`` fences the previous owner, the partition is
read to its end, ``announce``) before its first append, and every new producer re-reads the
partition's tail. Fenced (another instance took the partition), it fails the batch and ends
(``lost``). Every blocking confluent-kafka call runs on this thread; this module holds the queue
and the batch loop, and its jobs are modules of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from confluent_kafka import Producer

from core.errors import StoreUnavailableError
from core.eventsourcing.checkpoints import WalCheckpointer
from core.eventsourcing.jobs import call_soon, settle
from core.eventsourcing.links import Link
from core.records import EventRecord, Snapshot
from core.threads import name_this_thread
from plugins.kafka.config import KafkaConfig
from plugins.kafka.errors import fenced, kafka_unavailable
from plugins.kafka.index_waits import IndexWaits
from plugins.kafka.local_index import LocalIndex
from plugins.kafka.producer import ProducerLifecycle
from plugins.kafka.requests import (
    Append,
    Item,
    Outcome,
    SaveSnapshot,
    Stop,
    drained,
    gather,
    refuse,
)
from plugins.kafka.topic import KafkaTopic
from plugins.kafka.transactions import AppendTransactions

__all__ = ["KafkaWriter"]

log = logging.getLogger(__name__)
_IDLE_REPAIR: Final = 1.0  # seconds without a request before the producer is checked

Announce = Callable[[Producer, int], None]


class KafkaWriter:
    """The writer of ``partition``. ``announce`` writes the ownership record once it is caught
    up; ``lost`` is called on this thread when a newer owner fenced it (the thread then ends);
    ``owns`` says whether the partition is still this instance's (no producer restarts if not)."""

    def __init__(
        self,
        config: KafkaConfig,
        partition: int = 0,
        *,
        checkpointer: WalCheckpointer | None = None,
        announce: Announce | None = None,
        lost: Callable[[KafkaWriter], None] | None = None,
        owns: Callable[[], bool] | None = None,
    ) -> None:
        self._config = config
        self.partition = partition
        self._announce = announce
        self._lost = lost
        self._owns = owns
        self.fenced = False  # a newer owner took the partition
        self._queue: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False
        # Taken to queue an item and by the thread when it stops accepting: nothing can be
        # queued after the thread's last look at the queue, so every future gets its answer.
        self._gate = threading.Lock()
        self._topic = KafkaTopic(config)
        self._local = LocalIndex(config, [partition], checkpointer)
        self._producers = ProducerLifecycle(self._topic, self._local.mark_stale, partition)
        self._transactions = AppendTransactions(
            self._topic, self._local, self._producers, partition
        )
        self.index_waits = IndexWaits(config.append_timeout)  # what a read waits for

    # -- the event loop's side ----------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._accepting and self._thread is not None and self._thread.is_alive()

    @property
    def batches(self) -> int:
        """Committed transactions, for diagnostics."""
        return self._transactions.batches

    @property
    def appends(self) -> int:
        return self._transactions.appends

    @property
    def caught_up(self) -> int:
        """Events indexed by catch-ups (start-up and resyncs)."""
        return self._local.caught_up

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        opened: asyncio.Future[None] = loop.create_future()
        name = f"kafka-writer:{self.partition}:{self._config.topic}"
        thread = threading.Thread(target=self._run, args=(loop, opened), name=name, daemon=True)
        self._thread = thread
        thread.start()
        await opened
        self._accepting = True

    def append(
        self,
        stream_id: str,
        expected: int,
        records: Sequence[EventRecord],
        link: Link | None = None,
        head: Snapshot | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        with self._gate:
            loop = self._check_open()
            future: asyncio.Future[list[EventRecord]] = loop.create_future()
            deadline = time.monotonic() + self._config.append_timeout
            self._queue.put(Append(stream_id, expected, records, future, deadline, link, head))
        return future

    def save_snapshot(self, snapshot: Snapshot) -> asyncio.Future[None]:
        with self._gate:
            loop = self._check_open()
            future: asyncio.Future[None] = loop.create_future()
            self._queue.put(SaveSnapshot(snapshot, future))
        return future

    async def close(self) -> None:
        with self._gate:
            if not self.alive or self._loop is None:
                self._accepting = False
                return
            self._accepting = False
            done: asyncio.Future[None] = self._loop.create_future()
            self._queue.put(Stop(done))
        await done

    def _check_open(self) -> asyncio.AbstractEventLoop:
        if not self.alive or self._loop is None:
            raise StoreUnavailableError(f"the Kafka event store ({self._config.topic}) is closed")
        return self._loop

    # -- the thread ---------------------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[None]) -> None:
        name_this_thread()
        try:
            self._local.open(self._topic)
            self._take_over()
        except Exception as error:
            with contextlib.suppress(Exception):
                self._release()
            failure = error if isinstance(error, StoreUnavailableError) else None
            if failure is None:
                failure = kafka_unavailable("the Kafka event store cannot start", error)
            loop.call_soon_threadsafe(settle, [(opened, False, failure)])
            return
        loop.call_soon_threadsafe(settle, [(opened, True, None)])
        stop: Stop | None = None
        batch: list[Append | SaveSnapshot] = []
        try:
            while stop is None and not self.fenced:
                batch = []
                taken = gather(self._next(), self._queue, self._config.max_batch)
                batch, stop = taken.items, taken.stop
                try:
                    self._serve(loop, taken.appends, taken.snapshots)
                except BaseException as error:
                    # Whatever it was (a bug, a callback's exception out of librdkafka), the
                    # thread goes on: this batch is refused and the producer rebuilt.
                    self._batch_failed(loop, batch, error)
        except BaseException as error:  # not even a batch failure could be handled
            log.exception("the Kafka writer thread failed")
            call_soon(loop, settle, refuse(batch, "the Kafka writer thread failed", error))
            raise
        finally:
            with self._gate:
                self._accepting = False
            self._drain(
                loop, kafka_unavailable(f"the Kafka event store ({self._config.topic}) is closed")
            )
            try:
                self._release()
            except Exception:
                log.exception("could not release the Kafka writer's resources")
            self.index_waits.indexed_up_to()  # no read waits for a write that will not come
            if stop is not None:
                call_soon(loop, settle, [(stop.future, True, None)])
            if self.fenced and self._lost is not None:
                self._lost(self)

    def _take_over(self) -> None:
        """``init_transactions`` (fences the previous writer), the partition read to its end,
        the stream heads past the last committed watermark written again (head_writes.py), then
        the ownership announced with the new producer."""
        producer = self._transactions.prepare(None)
        self._transactions.heads.take_over(producer, None)
        if self._announce is not None:
            self._announce(producer, self.partition)

    def _still_owned(self) -> bool:
        return self._owns is None or self._owns()

    def _next(self) -> Item:
        """The next request; while none comes, a producer lost to a failed batch is started
        again now rather than at the next append (``ProducerLifecycle.restart_if_due``)."""
        while True:
            try:
                return self._queue.get(timeout=_IDLE_REPAIR)
            except queue.Empty:
                # Never for a partition another instance has taken: that would fence it.
                if self._still_owned():
                    self._producers.restart_if_due(time.monotonic() + self._config.append_timeout)

    def _serve(
        self,
        loop: asyncio.AbstractEventLoop,
        appends: list[Append],
        snapshots: list[SaveSnapshot],
    ) -> None:
        """One batch: snapshots into the index, appends into one Kafka transaction, answers."""
        outcomes: list[Outcome] = []
        placed: list[tuple[EventRecord, int]] = []
        if snapshots:
            outcomes += self._local.save_snapshots(snapshots)
        if appends:
            answers, placed = self._transactions.commit(appends)
            outcomes += answers
        if self._producers.fencing is not None or any(
            not ok and fenced(result) for _, ok, result in outcomes
        ):
            self._fence()  # nothing of the batch landed; the loop ends after it
        # A commit with an unknown outcome is settled at once, and a read after its "may or
        # may not" answer waits for that, so a retry decides on what landed. Never once the
        # partition is another writer's: a new producer would fence it.
        unsettled = self._transactions.unsettled and not self.fenced and self._still_owned()
        if placed or unsettled:
            self.index_waits.answer()  # before any caller can see an answer
        call_soon(loop, settle, outcomes)
        if placed:  # after the answers: reads wait for it (``IndexWaits.wait_indexed``)
            self._local.write(placed)
            self.index_waits.indexed_up_to()
        if self._transactions.unsettled:
            deadline = time.monotonic() + self._config.append_timeout
            self._transactions.settle(deadline if unsettled else None)
            self.index_waits.indexed_up_to()
        if placed or snapshots:
            self._local.committed()

    def _batch_failed(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[Append | SaveSnapshot],
        error: BaseException,
    ) -> None:
        """Refuse what the batch has not answered yet (an answer already on its way stays: it
        is settled first), and start over from Kafka: a new producer, whose
        ``init_transactions`` settles whatever transaction the old one left, then a re-read of
        the topic's tail before the next version check."""
        log.error("a Kafka writer batch failed; refused, the producer is rebuilt", exc_info=error)
        self._producers.note(error)
        if self._producers.fencing is not None:
            self._fence()
        call_soon(loop, settle, refuse(batch, "the Kafka event store failed", error))
        self._producers.failed(error)
        self._local.stale = True
        # Its commit may have happened: the heads are repaired with the next transaction.
        self._transactions.heads.unknown(a.stream_id for a in batch if isinstance(a, Append))
        self.index_waits.indexed_up_to()

    def _fence(self) -> None:
        """A newer owner fenced the producer: no append is accepted from now on (before the
        callers hear of the failed batch), and the loop ends after this batch."""
        self.fenced = True
        with self._gate:
            self._accepting = False

    def _drain(self, loop: asyncio.AbstractEventLoop, failure: BaseException) -> None:
        call_soon(loop, settle, drained(self._queue, failure))

    def _release(self) -> None:
        self._producers.lose()
        self._local.release()
