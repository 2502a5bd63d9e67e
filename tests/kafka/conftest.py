"""Fixtures for the tests that need the real broker (``scripts/servers/kafka start``).

Without ``BALANCE_KAFKA_BOOTSTRAP`` these tests skip, with the reason; on CI (``CI=true``) they
fail instead, so a CI job without its broker cannot pass silently.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kafka.helpers import delete_topics, kafka_bootstrap


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    address = kafka_bootstrap()
    yield address
    delete_topics(address)
