"""Topic administration: create the topic and learn its id and partitions, list each
partition's end offset, and make the consumers that read partitions by hand."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from confluent_kafka.cimpl import NewTopic

from core.errors import StoreUnavailableError
from plugins.kafka.config import KafkaConfig
from plugins.kafka.errors import kafka_unavailable, remaining

__all__ = ["ADMIN_TIMEOUT", "KafkaTopic", "create_topic"]

ADMIN_TIMEOUT: Final = 10.0  # topic creation and description at start-up
_LATEST: Final = OffsetSpec.latest()  # type: ignore[no-untyped-call]


def create_topic(
    admin: AdminClient, config: KafkaConfig, name: str, partitions: int, policy: dict[str, str]
) -> None:
    """Create topic ``name`` unless it exists, with the configured replication factor
    (``min.insync.replicas`` 1 up to a factor of 2, else 2) and ``policy``."""
    new = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=config.replication,
        config={**policy, "min.insync.replicas": str(max(1, min(2, config.replication - 1)))},
    )
    try:
        admin.create_topics([new], operation_timeout=ADMIN_TIMEOUT)[name].result(ADMIN_TIMEOUT)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise kafka_unavailable(f"cannot create topic {name}", error) from error
    except Exception as error:  # concurrent.futures.TimeoutError
        raise kafka_unavailable(f"cannot create topic {name}", error) from error


class KafkaTopic:
    """The events topic as the writer thread sees it (every call blocks)."""

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.admin: AdminClient | None = None
        self.partitions = 0

    def open(self) -> str:
        """Create the topic if missing; return its id (a deleted and re-created topic has a
        new one, which invalidates the index)."""
        config = self.config
        admin = self.admin = AdminClient({"bootstrap.servers": config.bootstrap})
        # The source of truth never expires.
        policy = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
        create_topic(admin, config, config.topic, config.partitions, policy)
        partitions, topic_id = self.describe(config.topic)
        self.partitions = partitions
        return topic_id

    def describe(self, name: str) -> tuple[int, str]:
        """Topic ``name``'s partition count and id, asked until its metadata has propagated."""
        admin = self.admin
        if admin is None:
            raise StoreUnavailableError("the Kafka admin client is not open")
        deadline = time.monotonic() + ADMIN_TIMEOUT
        while True:
            try:
                futures = admin.describe_topics(
                    TopicCollection([name]), request_timeout=ADMIN_TIMEOUT
                )
                description = futures[name].result(ADMIN_TIMEOUT)
                return len(description.partitions), str(description.topic_id)
            except Exception as error:
                if time.monotonic() > deadline:
                    raise kafka_unavailable(f"cannot describe topic {name}", error) from error
                time.sleep(0.1)

    def ends(
        self,
        isolation: IsolationLevel,
        deadline: float | None,
        among: Sequence[int] | None = None,
        name: str | None = None,
    ) -> dict[int, int]:
        """Each partition's end offset as a reader of ``isolation`` sees it (read_committed: the
        last stable offset); of the events topic, or of topic ``name`` (same partitions)."""
        partitions = range(self.partitions) if among is None else among
        wanted = [(name or self.config.topic, p) for p in partitions]
        return {p: end for (_, p), end in self.offsets(isolation, deadline, wanted).items()}

    def offsets(
        self, isolation: IsolationLevel, deadline: float | None, among: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        """The end offsets of ``among``'s (topic, partition) pairs, of any topics, in one
        request."""
        admin = self.admin
        if admin is None:
            raise StoreUnavailableError("the Kafka admin client is not open")
        wanted = {TopicPartition(t, p): _LATEST for t, p in among}
        if deadline is None:
            deadline = time.monotonic() + ADMIN_TIMEOUT
        while True:
            timeout = remaining(deadline)
            try:
                futures = admin.list_offsets(
                    wanted, isolation_level=isolation, request_timeout=timeout
                )
                return {
                    (tp.topic, tp.partition): future.result(timeout).offset
                    for tp, future in futures.items()
                }
            except Exception as error:  # KafkaException, concurrent.futures.TimeoutError
                # A new topic's leaders take a moment to be known (NOT_LEADER_FOR_PARTITION,
                # which admin results do not mark retriable). After a broker restart the admin
                # client keeps the old leader epochs and gets FENCED_LEADER_EPOCH for good: a
                # new client asks afresh.
                if time.monotonic() + 0.2 > deadline:
                    topic = ", ".join(sorted({t for t, _ in among}))
                    raise kafka_unavailable(f"cannot list the offsets of {topic}", error) from error
                admin = self.admin = AdminClient({"bootstrap.servers": self.config.bootstrap})
            time.sleep(0.1)

    def reader(self, isolation: str) -> Consumer:
        """A consumer to assign partitions to by hand, reporting each partition's end."""
        return Consumer(
            {
                "bootstrap.servers": self.config.bootstrap,
                "group.id": f"{self.config.group_prefix}-index",  # never joined nor committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": isolation,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )

    def member(self) -> Consumer:
        """A consumer of the partition owners' group (KIP-848 protocol): the group's assignment
        decides which instance writes each partition. It never reads: its partitions stay
        paused."""
        return Consumer(
            {
                "bootstrap.servers": self.config.bootstrap,
                "group.id": self.config.owners_group,
                "group.protocol": "consumer",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
            }
        )
