"""The ``mongo`` backend through the composition root: configuration, and ``balance projector``
keeping the Mongo read model up to date from a SQLite event store in a process of its own."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from api.bootstrap import bootstrap
from api.cli import build_cli
from core.config import ConfigError, MissingSettingError, Settings
from handlers.accounts.messages import Deposit, OpenAccount
from handlers.accounts.projection import PROJECTION
from plugins.mongo.cli import run_projector
from plugins.mongo.config import MongoConfig
from plugins.mongo.readmodel import MongoReadModel
from tests.mongo.support import drop_database, mongo_url, unique_database
from tests.support import build, ctx


def test_the_mongo_read_model_needs_its_url(tmp_path: Path) -> None:
    settings = Settings(read_model="mongo", data_dir=tmp_path)
    with pytest.raises(MissingSettingError, match="BALANCE_MONGO_URL"):
        bootstrap(settings)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("mongo_url", "http://localhost/", "BALANCE_MONGO_URL"),
        ("mongo_database", "a.b", "BALANCE_MONGO_DATABASE"),
        ("mongo_bulk_chunk", "0", "BALANCE_MONGO_BULK_CHUNK"),
    ],
)
def test_bad_settings_are_named(key: str, value: str, message: str) -> None:
    values = {"mongo_url": "mongodb://127.0.0.1:27018/", key: value}
    with pytest.raises(ConfigError, match=message):
        MongoConfig.from_settings(Settings(values=values))


def test_the_projector_command_is_on_the_command_line(tmp_path: Path) -> None:
    assert "projector" in build_cli(Settings(data_dir=tmp_path)).commands


@pytest.mark.mongo
async def test_the_projector_process_fills_the_mongo_read_model(tmp_path: Path) -> None:
    url, database = mongo_url(), unique_database()
    values = {"mongo_url": url, "mongo_database": database}
    settings = Settings(
        event_store="sqlite", read_model="mongo", authenticator="fixed", data_dir=tmp_path,
        values=values,
    )  # fmt: skip
    # The API side, without its own projector: commands append to the SQLite event store.
    api = build(settings, run_projector=False)
    await api.start()
    try:
        opened = await api.mediator.send(OpenAccount("EUR", ctx(), initial_deposit="10.00"))
        await api.mediator.send(Deposit(opened.id, "2.50", ctx()))
        # The projector side (what `balance projector` runs), until stopped.
        stop = asyncio.Event()
        projector = asyncio.create_task(
            run_projector(
                bootstrap(dataclasses.replace(settings, authenticator="jwt"), run_projector=False),
                stop,
            )
        )
        model = MongoReadModel(MongoConfig(url=url, database=database))
        await model.start()
        try:
            for _ in range(100):
                account = await model.get_account(opened.id)
                if account is not None and account.balance == 1250:
                    break
                await asyncio.sleep(0.05)
            assert account is not None
            assert account.balance == 1250
            assert len(await model.statement(opened.id, None, None, 0, 10)) == 2
            assert await model.checkpoint(PROJECTION) > 0
        finally:
            stop.set()
            assert await asyncio.wait_for(projector, 10) >= 2
            await model.close()
    finally:
        await api.close()
        await drop_database(url, database)
