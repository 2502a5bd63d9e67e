"""Membership of the partition owners' group: the group's assignment decides which instance
writes each partition.

Every instance joins the consumer group ``<group prefix>-owners-<topic>`` on the events topic
with the KIP-848 protocol (``group.protocol=consumer``): the broker assigns the partitions,
incrementally (a partition that moves is revoked from one member, then assigned to another;
the others keep theirs). The member never reads (its partitions stay paused): this thread only
polls, so that librdkafka serves the assignment callbacks here, and hands them on:
``assigned(partitions)`` returns at once (the take-over runs elsewhere), ``revoked(partitions)``
returns once this instance has stopped writing them. A member that misses the group's session
timeout loses its partitions (``on_lost``): the same as a revocation, except that another
instance may already write them (its ``init_transactions`` has fenced ours)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Final

from confluent_kafka import Consumer, TopicPartition

from core.threads import name_this_thread
from plugins.kafka.topic import KafkaTopic

__all__ = ["GroupMembership"]

log = logging.getLogger(__name__)

_POLL: Final = 0.2

Handoff = Callable[[list[int]], None]


class GroupMembership:
    def __init__(self, topic: KafkaTopic, assigned: Handoff, revoked: Handoff) -> None:
        self._topic = topic
        self._assigned = assigned
        self._revoked = revoked
        self._owned: set[int] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._stopping.clear()
        name = f"kafka-owners:{self._topic.config.topic}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Leave the group (blocks): stop writing every partition, then let the group hand
        them to the other members at once, without waiting for a session timeout."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        name_this_thread()
        consumer = self._topic.member()
        try:
            consumer.subscribe(
                [self._topic.config.topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            while not self._stopping.is_set():
                try:
                    message = consumer.poll(_POLL)
                except Exception:
                    log.exception("the owners' group consumer failed a poll")
                    self._stopping.wait(_POLL)
                    continue
                if message is not None and message.error() is not None:
                    log.info("the owners' group: %s", message.error())
        finally:
            with contextlib.suppress(Exception):
                consumer.close()  # revokes what is left (on_revoke), then leaves the group
            if self._owned:
                self._hand_back(sorted(self._owned))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        try:
            consumer.incremental_assign(partitions)
            consumer.pause(partitions)  # ownership only: this consumer reads nothing
        except Exception:
            log.exception("cannot pause the owners' group partitions %s", numbers)
        if numbers:
            log.info("%s: assigned partitions %s", self._topic.config.owners_group, numbers)
            self._owned.update(numbers)
            try:
                self._assigned(numbers)
            except Exception:
                log.exception("cannot take partitions %s over", numbers)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        if numbers:
            log.info("%s: revoked partitions %s", self._topic.config.owners_group, numbers)
            self._hand_back(numbers)
        with contextlib.suppress(Exception):
            consumer.incremental_unassign(partitions)

    def _hand_back(self, partitions: list[int]) -> None:
        self._owned.difference_update(partitions)
        try:
            self._revoked(partitions)
        except Exception:
            log.exception("cannot stop writing partitions %s", partitions)
