"""One storage contract, every backend: each test here runs once per backend named below.

A backend is built the way the app builds it: through the ``balance_backends`` offer of
``plugins.<name>.plugin``, with settings whose ``data_dir`` is the test's own directory. Adding a
backend is one more entry in ``EVENT_STORES`` or ``READ_MODELS``, e.g.
``pytest.param("kafka", marks=pytest.mark.kafka)``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import PREFIX, Settings
from core.container import Container
from core.registry import Port
from tests.kafka import helpers as kafka_helpers

EVENT_STORES = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("kafka", marks=pytest.mark.kafka),
]
READ_MODELS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("mongo", marks=pytest.mark.mongo),
]

# Backends whose positions are one global counter from 1 (a Kafka position is a partition offset).
GLOBAL_POSITIONS = frozenset({"memory", "sqlite"})


def backend_settings(data_dir: Path) -> Settings:
    """``BALANCE_*`` variables (a broker's address, say) with the test's own data directory."""
    values = {
        name[len(PREFIX) :].lower(): value
        for name, value in os.environ.items()
        if name.startswith(PREFIX)
    }
    return Settings(data_dir=data_dir, values=values)


def build_backend(port: Port, name: str, settings: Settings) -> Any:
    plugin = importlib.import_module(f"plugins.{name}.plugin")
    for offer in plugin.balance_backends():
        if offer.port == port and offer.name == name:
            return offer.factory(settings, Container())
    raise LookupError(f"plugins.{name}.plugin offers no {port} named {name!r}")


@pytest.fixture
def global_positions(request: pytest.FixtureRequest) -> bool:
    """Whether this test's event store numbers events with one global counter from 1."""
    return request.node.callspec.params.get("event_store") in GLOBAL_POSITIONS


@pytest.fixture(scope="session")
def kafka_topics() -> Iterator[None]:
    """Deletes the topics the Kafka-backed tests created, at the end of the session."""
    yield
    bootstrap = os.environ.get(kafka_helpers.BOOTSTRAP_VARIABLE)
    if bootstrap:
        kafka_helpers.delete_topics(bootstrap)


def kafka_settings(settings: Settings) -> Settings:
    """Kafka: the broker (or skip), and a topic and transactional id of this test's own."""
    kafka_helpers.kafka_bootstrap()
    topic = kafka_helpers.unique_topic("test.contract")
    # One partition: a subscription's after_checkpoint (one number) is only exact there; with
    # several partitions a new group starts from the beginning (docs/kafka.md).
    values = {
        **settings.values,
        "kafka_topic": topic,
        "kafka_transactional_prefix": f"{topic}-w",
        "kafka_partitions": "1",
    }
    return dataclasses.replace(settings, values=values)


@pytest.fixture(params=EVENT_STORES)
async def event_store(
    request: pytest.FixtureRequest, tmp_path: Path, kafka_topics: None
) -> AsyncIterator[Any]:
    settings = backend_settings(tmp_path / "data")
    if request.param == "kafka":
        settings = kafka_settings(settings)
    store = build_backend("event_store", request.param, settings)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=READ_MODELS)
async def read_model(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    settings = backend_settings(tmp_path / "data")
    database = None
    if request.param == "mongo":
        # A database of the test's own (the server may be shared), dropped afterwards.
        from tests.mongo.support import mongo_url, unique_database

        database = unique_database()
        values = {**settings.values, "mongo_url": mongo_url(), "mongo_database": database}
        settings = dataclasses.replace(settings, values=values)
    model = build_backend("read_model", request.param, settings)
    await model.start()
    try:
        yield model
    finally:
        await model.close()
        if database is not None:
            from tests.mongo.support import drop_database

            await drop_database(settings.require("mongo_url"), database)
