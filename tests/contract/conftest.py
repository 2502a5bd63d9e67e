"""One storage contract, every backend: each test here runs once per backend named below.

A backend is built the way the app builds it: through the ``balance_backends`` offer of
``plugins.<name>.plugin``, with settings whose ``data_dir`` is the test's own directory. Adding a
backend is one more entry in ``EVENT_STORES`` or ``READ_MODELS``, e.g.
``pytest.param("kafka", marks=pytest.mark.kafka)``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.config import PREFIX, Settings
from core.container import Container
from core.registry import Port

EVENT_STORES = [pytest.param("memory"), pytest.param("sqlite")]
READ_MODELS = [pytest.param("memory"), pytest.param("sqlite")]

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


@pytest.fixture(params=EVENT_STORES)
async def event_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    store = build_backend("event_store", request.param, backend_settings(tmp_path / "data"))
    await store.start()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=READ_MODELS)
async def read_model(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    model = build_backend("read_model", request.param, backend_settings(tmp_path / "data"))
    await model.start()
    try:
        yield model
    finally:
        await model.close()
