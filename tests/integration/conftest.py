"""The backends the rebuild tests run on."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.config import Settings
from tests.support import settings_for


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("mongo", marks=pytest.mark.mongo),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ]
)
async def settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    """The read model in SQLite with the events in SQLite or in Kafka (a topic of its own), or
    the read model in Mongo (a database of its own, whose readers look at the generation pointer
    before every query) with the events in SQLite."""
    if request.param == "sqlite":
        yield settings_for("sqlite", tmp_path)
        return
    if request.param == "kafka":
        kafka = settings_for("kafka+mongo", tmp_path)
        yield dataclasses.replace(kafka, read_model="sqlite")
        return
    from tests.mongo.support import drop_database, mongo_url, unique_database

    url, database = mongo_url(), unique_database()
    values = {"mongo_url": url, "mongo_database": database, "mongo_generation_poll_ms": "0"}
    yield dataclasses.replace(settings_for("sqlite", tmp_path, **values), read_model="mongo")
    await drop_database(url, database)
