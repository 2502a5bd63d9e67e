from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from api.bootstrap import Application
from tests.mongo.support import drop_created_databases
from tests.support import SCENARIO_BACKENDS, running, settings_for


@pytest.fixture(scope="session", autouse=True)
def _drop_mongo_databases() -> Iterator[None]:
    """The MongoDB-wire server is shared: the session's test databases go at its end."""
    yield
    drop_created_databases()


@pytest.fixture(params=SCENARIO_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def app(backend: str, tmp_path: Path) -> AsyncIterator[Application]:
    async with running(settings_for(backend, tmp_path)) as application:
        yield application
