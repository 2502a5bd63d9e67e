"""Shared by the Kafka tests and the contract suite's ``kafka`` parameter: the broker's address
(or a skip, or a failure on CI), unique topic names on the shared broker, and their clean-up;
and a plain reader of a whole topic."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

BOOTSTRAP_VARIABLE = "BALANCE_KAFKA_BOOTSTRAP"

# Topics the tests created in this session; deleted at its end (see delete_topics).
created_topics: set[str] = set()


def kafka_bootstrap() -> str:
    """The broker's address; without one, skip, except on CI where that is a failure."""
    bootstrap = os.environ.get(BOOTSTRAP_VARIABLE, "")
    if bootstrap:
        return bootstrap
    reason = (
        f"{BOOTSTRAP_VARIABLE} is not set: start the broker with `scripts/servers/kafka start` "
        "and `eval export $(scripts/servers/kafka env)`"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def unique_topic(prefix: str = "test.balance") -> str:
    """A topic name of this test's own (another engineer uses the same broker)."""
    topic = f"{prefix}.{uuid4().hex[:12]}"
    created_topics.add(topic)
    return topic


def delete_topics(bootstrap: str) -> None:
    if not created_topics:
        return
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # Each Kafka store also made its topic's owner directory, ``<topic>.owners``, and its
    # stream-heads topic, ``<topic>.heads``.
    made = {f"{topic}.{kind}" for topic in created_topics for kind in ("owners", "heads")}
    names = sorted(created_topics | made)
    futures = admin.delete_topics(names, operation_timeout=10)
    for future in futures.values():
        # Already gone, or the broker is down: nothing to clean.
        with contextlib.suppress(Exception):
            future.result(15)
    created_topics.clear()


def read_topic(bootstrap: str, topic: str, isolation: str = "read_committed") -> list[Any]:
    """Every message of the topic, with a plain confluent-kafka consumer (no group)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list[Any] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + 20
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, "the topic was not read to its end"
            for message in consumer.consume(100, timeout=0.5):
                error = message.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    at_end.add(message.partition() or 0)
                else:
                    messages.append(message)
        return messages
    finally:
        consumer.close()


def open_transactions(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """The partitions a transaction holds open: their last stable offset (what read_committed
    readers can reach) short of their end, as (LSO, end) each."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    ends: dict[IsolationLevel, dict[int, int]] = {}
    for isolation in (IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED):
        wanted = {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions}
        futures = admin.list_offsets(wanted, isolation_level=isolation, request_timeout=10)
        ends[isolation] = {tp.partition: f.result(10).offset for tp, f in futures.items()}
    stable, end = ends[IsolationLevel.READ_COMMITTED], ends[IsolationLevel.READ_UNCOMMITTED]
    return {p: (stable[p], end[p]) for p in partitions if stable[p] < end[p]}


def broker_script(action: str, bootstrap: str | None = None, timeout: float = 300) -> None:
    """``scripts/servers/kafka <action>`` on the broker the tests use (``bootstrap``, else
    ``BALANCE_KAFKA_BOOTSTRAP``), by its port: a broker on another port of the same host (another
    engineer's, or a CI run's) is never stopped."""
    address = bootstrap or kafka_bootstrap()
    env = {**os.environ, "KAFKA_PORT": address.rsplit(":", 1)[1]}
    script = Path(__file__).resolve().parents[2] / "scripts" / "servers" / "kafka"
    subprocess.run([str(script), action], env=env, check=True, capture_output=True, timeout=timeout)
