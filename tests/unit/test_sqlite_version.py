"""Every SQLite write is set-based (``json_each`` and ``->>``, SQLite 3.38): an older library is
refused when a store, a read model or the Kafka index is opened, with a typed error that names
both versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.config import ConfigError
from core.eventsourcing.schema import SqliteVersionError, open_connection
from plugins.sqlite import SqliteEventStore, SqliteReadModel


@pytest.fixture
def old_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 37, 2))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.37.2")


def check_refusal(error: SqliteVersionError) -> None:
    assert isinstance(error, ConfigError)
    assert (error.required, error.found) == ("3.38.0", "3.37.2")
    assert "3.38.0" in str(error)
    assert "3.37.2" in str(error)


@pytest.mark.usefixtures("old_sqlite")
async def test_the_sqlite_store_and_read_model_refuse_an_old_sqlite(tmp_path: Path) -> None:
    for backend in (SqliteEventStore(tmp_path), SqliteReadModel(tmp_path)):
        with pytest.raises(SqliteVersionError) as refused:
            await backend.start()
        check_refusal(refused.value)
        assert not await backend.ready()
    assert not list(tmp_path.glob("*.db"))  # refused before a file was created


@pytest.mark.usefixtures("old_sqlite")
def test_the_kafka_index_connection_refuses_an_old_sqlite(tmp_path: Path) -> None:
    with pytest.raises(SqliteVersionError) as refused:
        open_connection(tmp_path / "kafka-index.db", synchronous="NORMAL", writer=True)
    check_refusal(refused.value)


async def test_the_sqlite_here_is_new_enough(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path)
    await store.start()
    try:
        assert await store.ready()
    finally:
        await store.close()
