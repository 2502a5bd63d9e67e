"""Fixtures for the Mongo read-model tests: each test gets a database of its own on the server
named by ``BALANCE_MONGO_URL``, dropped afterwards. Without that variable the tests fail when
``CI=true`` and are skipped otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from plugins.mongo.config import MongoConfig
from plugins.mongo.readmodel import MongoReadModel
from tests.mongo.support import drop_database, mongo_url, unique_database


@pytest.fixture
def mongo_config() -> MongoConfig:
    return MongoConfig(url=mongo_url(), database=unique_database())


@pytest.fixture
async def mongo(mongo_config: MongoConfig) -> AsyncIterator[MongoReadModel]:
    model = MongoReadModel(mongo_config)
    await model.start()
    try:
        yield model
    finally:
        await model.close()
        await drop_database(mongo_config.url, mongo_config.database)
