"""A projection's feed from the topic: one Kafka consumer in a consumer group.

- Group ``<group_prefix>-<group>``, ``isolation.level=read_committed`` (only committed
  transactions: whole appends), no auto-commit: ``commit(batch)`` commits that batch's offsets
  synchronously, and the projector calls it only after the view write. A crash in between
  replays the batch, which the views absorb (each change is guarded by stream and version).
- Progress is the group's committed offsets. ``after_checkpoint`` (a position: the offset after
  the last event seen) is one number, so it can only stand for one partition: it is used for a
  one-partition topic where the group has committed nothing yet. With several partitions a
  partition without a committed offset starts from its beginning; the views absorb the replay.
- A session timeout of 10 s: a killed projector's partitions move to its successor quickly.
- A group whose name ends with ``-rebuild`` always starts from the beginning of every partition
  (``Projector.rebuild`` drops the views and replays everything).

Every consumer call runs in this subscription's own thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Final

import msgspec
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaException,
    TopicPartition,
)

from core.errors import StoreUnavailableError
from core.ports import EventBatch
from core.records import EventRecord, decode_record
from core.threads import name_this_thread
from plugins.kafka.config import KafkaConfig

__all__ = ["KafkaSubscription"]

log = logging.getLogger(__name__)

_SLICE: Final = 0.1  # a poll never blocks the thread longer than this, so close is prompt
_REBUILD_SUFFIX: Final = "-rebuild"


def _unavailable(message: str, error: BaseException) -> StoreUnavailableError:
    failure = StoreUnavailableError(f"{message}: {error}")
    failure.__cause__ = error
    return failure


class KafkaSubscription:
    def __init__(self, config: KafkaConfig, group: str, after_checkpoint: int) -> None:
        self._config = config
        self.group_id = f"{config.group_prefix}-{group}"
        self._from_start = group.endswith(_REBUILD_SUFFIX)
        single = config.partitions == 1
        self._after = max(after_checkpoint, 0) if single and not self._from_start else 0
        self._executor = ThreadPoolExecutor(
            1, thread_name_prefix=f"kafka-sub:{group}", initializer=name_this_thread
        )
        self._consumer: Consumer | None = None
        self._closed = False
        # A poll whose caller gave up (cancelled): its events go to the next caller.
        self._pending: Future[EventBatch | None] | None = None
        # Batches handed out and not committed yet, with the offsets to commit for each.
        self._uncommitted: list[tuple[EventBatch, dict[int, int]]] = []

    # -- the event loop's side ----------------------------------------------------------------

    async def next_batch(self, timeout: float) -> EventBatch | None:
        if self._closed:
            raise StoreUnavailableError(f"subscription {self.group_id} is closed")
        if self._pending is None:
            deadline = time.monotonic() + max(timeout, 0.0)
            self._pending = self._executor.submit(self._poll, deadline)
        pending = self._pending
        try:
            batch = await asyncio.shield(asyncio.wrap_future(pending))
        except asyncio.CancelledError:
            raise  # the poll goes on; its result is kept for the next call
        except KafkaException as error:
            self._pending = None
            raise _unavailable(f"Kafka consumer {self.group_id} failed", error) from error
        self._pending = None
        return batch

    async def commit(self, batch: EventBatch) -> None:
        found = [i for i, (handed, _) in enumerate(self._uncommitted) if handed is batch]
        if not found:
            return  # not ours, or already committed
        index = found[0]
        # Offsets never move back, so committing this batch covers the earlier ones too.
        merged: dict[int, int] = {}
        for _, offsets_ in self._uncommitted[: index + 1]:
            for partition, offset in offsets_.items():
                merged[partition] = max(merged.get(partition, 0), offset)
        del self._uncommitted[: index + 1]
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._commit, merged)
        except KafkaException as error:
            raise _unavailable(f"Kafka consumer {self.group_id} could not commit", error) from error

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    # -- the subscription's thread ------------------------------------------------------------

    def _open(self) -> Consumer:
        if self._consumer is None:
            consumer = Consumer(
                {
                    "bootstrap.servers": self._config.bootstrap,
                    "group.id": self.group_id,
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "reconnect.backoff.max.ms": 1000,
                    "session.timeout.ms": 10_000,
                    "heartbeat.interval.ms": 2_000,
                }
            )
            consumer.subscribe([self._config.topic], on_assign=self._on_assign)
            self._consumer = consumer
        return self._consumer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Where each newly assigned partition starts (runs inside ``poll``)."""
        if self._from_start:
            for tp in partitions:
                tp.offset = OFFSET_BEGINNING
        elif self._after > 0:
            committed = consumer.committed(partitions, timeout=10.0)
            for tp, known in zip(partitions, committed, strict=True):
                if known.offset == OFFSET_INVALID or known.offset < 0:
                    tp.offset = self._after
        consumer.assign(partitions)

    def _poll(self, deadline: float) -> EventBatch | None:
        consumer = self._open()
        messages: list[Any] = []
        while not self._closed:
            first = consumer.poll(min(_SLICE, max(deadline - time.monotonic(), 0.0)))
            if first is not None:
                messages.append(first)
                more = self._config.batch_size - 1
                if more > 0:
                    messages.extend(consumer.consume(num_messages=more, timeout=0))
                break
            if time.monotonic() >= deadline:
                break
        events: list[EventRecord] = []
        offsets: dict[int, int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("Kafka consumer %s: %s", self.group_id, error)
                continue
            partition, offset = message.partition() or 0, message.offset() or 0
            offsets[partition] = max(offsets.get(partition, 0), offset + 1)
            try:
                record = decode_record(message.value() or b"")
            except msgspec.DecodeError:
                log.warning(
                    "%s[%d]@%d is not an event; skipped", message.topic(), partition, offset
                )
                continue
            events.append(msgspec.structs.replace(record, position=offset + 1))
        if not events:
            if offsets:  # only undecodable messages: step over them
                self._commit(offsets)
            return None
        batch = EventBatch(events=events, checkpoint=max(e.position for e in events))
        self._uncommitted.append((batch, offsets))
        return batch

    def _commit(self, offsets: dict[int, int]) -> None:
        consumer = self._open()
        topic = self._config.topic
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in sorted(offsets.items())],
            asynchronous=False,
        )

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()
