"""Helpers the test layers share: principals, a test authenticator plugin, an app on a backend."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import msgspec
import pytest
from hypothesis import HealthCheck, settings

from api.bootstrap import Application, bootstrap
from core.config import Settings
from core.errors import ConcurrencyError, OwnedElsewhereError
from core.eventsourcing.links import Link
from core.hookspecs import hookimpl
from core.ports import Principal
from core.records import EventMetadata, EventRecord, Snapshot
from core.registry import BackendOffer
from handlers.accounts.clock import Clock
from handlers.accounts.messages import CommandContext
from plugins.memory.store import MemoryEventStore

RECORDS_T0 = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def event_record(
    stream_id: str,
    version: int,
    *,
    at: datetime | None = None,
    data: bytes = b'{"amount":100}',
    metadata: EventMetadata | None = None,
    event_id: str | None = None,
) -> EventRecord:
    """A deposit-shaped record for the store tests: a fresh event id, and by default the time
    ``RECORDS_T0`` plus ``version`` seconds."""
    return EventRecord(
        stream_id=stream_id,
        version=version,
        type="MoneyDeposited",
        schema=1,
        event_id=event_id or uuid4().hex,
        occurred_at=at or RECORDS_T0 + timedelta(seconds=version),
        data=msgspec.Raw(data),
        metadata=metadata or EventMetadata(),
    )


READ_WRITE = frozenset({"accounts:read", "accounts:write"})
ALICE = Principal("alice", READ_WRITE)
BOB = Principal("bob", READ_WRITE)
TELLER = Principal("teller-1", READ_WRITE, frozenset({"teller"}))


def ctx(actor: Principal = ALICE, **kwargs: Any) -> CommandContext:
    return CommandContext(actor=actor, **kwargs)


class FixedTokens:
    """An authenticator for tests that never touch HTTP: the token is the subject."""

    async def authenticate(self, token: str) -> Principal:
        return Principal(token, READ_WRITE)


class _TestAuthPlugin:
    @hookimpl
    def balance_backends(self) -> list[BackendOffer]:
        return [BackendOffer("authenticator", "fixed", lambda settings, container: FixedTokens())]


class FencedStore(MemoryEventStore):
    """A memory store that refuses appends to the streams in ``fenced`` (stream → owner URL) as
    written by another instance, writing nothing, as a store whose partition just moved away
    does. ``plugin`` offers it as the ``fenced`` event store."""

    def __init__(self) -> None:
        super().__init__()
        self.fenced: dict[str, str] = {}
        self.appends = 0

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[EventRecord]
    ) -> Sequence[EventRecord]:
        self.appends += 1
        owner = self.fenced.get(stream_id)
        if owner is not None:
            raise OwnedElsewhereError(stream_id, owner)
        return await super().append(stream_id, expected_version, events)

    def enqueue(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[EventRecord],
        link: Link | None = None,
        *,
        head: Snapshot | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        """The pipelined path refuses as ``append`` does (its owner would raise at once too)."""
        self.appends += 1
        owner = self.fenced.get(stream_id)
        if owner is not None:
            raise OwnedElsewhereError(stream_id, owner)
        return super().enqueue(stream_id, expected_version, events, link, head=head)

    @property
    def plugin(self) -> object:
        store = self

        class Offer:
            @hookimpl
            def balance_backends(self) -> list[BackendOffer]:
                return [BackendOffer("event_store", "fenced", lambda settings, c: store)]

        return Offer()


class FakeClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


# The backends the scenario suites run on: the embedded ones, and the production pair on the
# real servers that scripts/test starts (skipped without them, a failure on CI).
SCENARIO_BACKENDS = [
    pytest.param("memory"),
    pytest.param("sqlite"),
    pytest.param("kafka+mongo", marks=[pytest.mark.kafka, pytest.mark.mongo]),
]


def settings_for(
    backend: str, data_dir: Path, authenticator: str = "fixed", **values: str
) -> Settings:
    """Settings on ``backend``; ``kafka+mongo`` gets a topic and a database of its own."""
    event_store = read_model = backend
    if backend == "kafka+mongo":
        from tests.kafka.helpers import kafka_bootstrap, unique_topic
        from tests.mongo.support import mongo_url, unique_database

        event_store, read_model = "kafka", "mongo"
        topic = unique_topic("test.scenario")
        values = {
            "kafka_bootstrap": kafka_bootstrap(),
            "kafka_topic": topic,
            "kafka_transactional_prefix": f"{topic}-w",
            "kafka_group_prefix": topic,
            "mongo_url": mongo_url(),
            "mongo_database": unique_database(),
            **values,
        }
    return replace(
        Settings(),
        event_store=event_store,
        read_model=read_model,
        authenticator=authenticator,
        data_dir=data_dir,
        values=values,
    )


def build(
    settings: Settings, extra_plugins: dict[str, object] | None = None, **kwargs: Any
) -> Application:
    plugins = {"test-auth": _TestAuthPlugin(), **(extra_plugins or {})}
    return bootstrap(settings, extra_plugins=plugins, **kwargs)


@asynccontextmanager
async def running(settings: Settings, **kwargs: Any) -> AsyncIterator[Application]:
    app = build(settings, **kwargs)
    await app.start()
    try:
        yield app
    finally:
        await app.close()


def rows_in_main_file(path: Path, scratch: Path, table: str) -> int | None:
    """The rows of ``table`` that the SQLite file at ``path`` holds on its own, without its WAL:
    what checkpoints have copied. None while a checkpoint is halfway through (the lone file is
    then not a consistent image)."""
    scratch.mkdir(exist_ok=True)
    copy = scratch / "copy.db"
    for leftover in scratch.iterdir():
        leftover.unlink()
    shutil.copyfile(path, copy)
    connection = sqlite3.connect(copy)
    try:
        tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", (table,))
        if tables.fetchone()[0] == 0:
            return 0  # not even the table has been copied yet
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.DatabaseError:
        return None
    finally:
        connection.close()


async def main_file_rows_after(
    path: Path, scratch: Path, table: str, want: int, seconds: float
) -> int | None:
    """``rows_in_main_file`` once it is ``want``, or what it is after ``seconds``."""
    rows: int | None = None
    for _ in range(int(seconds / 0.05)):
        rows = rows_in_main_file(path, scratch, table)
        if rows == want:
            break
        await asyncio.sleep(0.05)
    return rows


# For property tests: no deadline and no speed health checks, so that the verdict never depends
# on how fast the host runs the examples.
HOST_INDEPENDENT = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


async def appends_checked_at(store: Any, stream_id: str, version: int, wrong: int) -> None:
    """``store`` refuses an append to ``stream_id`` expecting ``wrong`` and stores one expecting
    ``version`` (the stream's, as the store's version check knows it)."""
    with pytest.raises(ConcurrencyError):
        await store.append(stream_id, wrong, [event_record(stream_id, wrong + 1)])
    stored = await store.append(stream_id, version, [event_record(stream_id, version + 1)])
    assert [r.version for r in stored] == [version + 1]
