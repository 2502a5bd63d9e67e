from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.bootstrap import Application
from tests.support import SCENARIO_BACKENDS, running, settings_for


@pytest.fixture(params=SCENARIO_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def app(backend: str, tmp_path: Path) -> AsyncIterator[Application]:
    async with running(settings_for(backend, tmp_path)) as application:
        yield application
