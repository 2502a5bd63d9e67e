"""Shared by the Kafka tests and the contract suite's ``kafka`` parameter: the broker's address
(or a skip, or a failure on CI), unique topic names on the shared broker, and their clean-up."""

from __future__ import annotations

import contextlib
import os
from uuid import uuid4

import pytest

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
    futures = admin.delete_topics(sorted(created_topics), operation_timeout=10)
    for future in futures.values():
        # Already gone, or the broker is down: nothing to clean.
        with contextlib.suppress(Exception):
            future.result(15)
    created_topics.clear()
