"""The owner directory: which instance writes each partition, readable by every instance.

A compacted topic ``<topic>.owners`` with one partition. When an instance has taken a partition
over (fenced the previous owner with ``init_transactions`` and read the partition to its end),
it writes one record there, key = the partition number, value = its advertised URL and instance
id, inside a transaction of THAT partition's transactional producer: a fenced writer (a zombie)
cannot commit an ownership record any more, so a record visible to ``read_committed`` readers
was written by an owner that had fenced every earlier one. The record's offset in the topic is
its epoch: the broker numbers them, so a later owner's record always has a higher one, and a
reader keeps, per partition, the record with the highest epoch. Every instance reads the topic
(the tailer, tailer.py) into an ``OwnerDirectory``."""

from __future__ import annotations

import threading
import time

import msgspec
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from plugins.kafka.config import KafkaConfig
from plugins.kafka.delivery import Delivery
from plugins.kafka.errors import kafka_unavailable, remaining
from plugins.kafka.topic import create_topic

__all__ = ["Owner", "OwnerDirectory", "announce", "create_owners_topic", "read_owner"]


class Owner(msgspec.Struct, frozen=True):
    """The instance that writes a partition (``url``: where to send its commands)."""

    partition: int
    url: str
    instance: str
    epoch: int = 0  # the record's offset + 1 in the owners topic; not in the stored value


class _Stored(msgspec.Struct, frozen=True):
    partition: int
    url: str
    instance: str


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Stored).decode


def create_owners_topic(admin: AdminClient, config: KafkaConfig) -> None:
    """Create ``<topic>.owners`` if missing: one partition (one order for every record),
    compacted (only each partition's last record matters)."""
    create_topic(admin, config, config.owners_topic, 1, {"cleanup.policy": "compact"})


def announce(producer: Producer, config: KafkaConfig, owner: Owner, deadline: float | None) -> int:
    """Write ``owner``'s record in a transaction of the partition's producer (blocks); returns
    the record's epoch."""
    delivery = Delivery()
    producer.begin_transaction()
    try:
        producer.produce(
            config.owners_topic,
            partition=0,
            key=str(owner.partition).encode(),
            value=_encode(_Stored(owner.partition, owner.url, owner.instance)),
            on_delivery=delivery,
        )
        if producer.flush(remaining(deadline)) or not delivery.placed:
            raise kafka_unavailable(f"Kafka did not take the ownership record ({delivery.error})")
    except BaseException:
        producer.abort_transaction(remaining(deadline))
        raise
    producer.commit_transaction(remaining(deadline))
    return delivery.offset + 1


def read_owner(value: bytes | None, offset: int) -> Owner | None:
    """An ownership record as read from the owners topic; None for anything else."""
    try:
        stored = _decode(value or b"")
    except msgspec.DecodeError:
        return None
    return Owner(stored.partition, stored.url, stored.instance, epoch=offset + 1)


class OwnerDirectory:
    """The latest ownership record of each partition (written by the tailer's thread, read
    from any thread)."""

    def __init__(self) -> None:
        self._owners: dict[int, Owner] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def record(self, owner: Owner) -> None:
        with self._changed:
            known = self._owners.get(owner.partition)
            if known is None or owner.epoch > known.epoch:
                self._owners[owner.partition] = owner
                self._changed.notify_all()

    def owner(self, partition: int) -> Owner | None:
        return self._owners.get(partition)

    def owners(self) -> dict[int, Owner]:
        with self._lock:
            return dict(self._owners)

    def wait_for(self, partition: int, instance: str, timeout: float) -> bool:
        """Whether the directory names ``instance`` as ``partition``'s owner within
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            return self._changed.wait_for(
                lambda: (o := self._owners.get(partition)) is not None and o.instance == instance,
                timeout=max(deadline - time.monotonic(), 0.0),
            )
