"""Crash tests of the production pair on the real servers: a projector killed mid-stream, and an
API restarted. (The broker stopped during commands is tests/e2e/test_broker_down.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from api.bootstrap import Application
from core.config import Settings, env_name
from core.ports import EventStore
from core.records import decode_record
from handlers.accounts.codec import decode_event
from handlers.accounts.messages import Deposit, OpenAccount
from handlers.accounts.projection import PROJECTION
from handlers.accounts.readmodel import AccountReadModel
from tests.support import ctx, running, settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]
ROOT = Path(__file__).resolve().parents[2]


def _environment(settings: Settings, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALANCE_")}
    env.update({env_name(key): value for key, value in settings.values.items()})
    env.update(
        BALANCE_EVENT_STORE=settings.event_store,
        BALANCE_READ_MODEL=settings.read_model,
        BALANCE_DATA_DIR=str(data_dir),
        PYTHONPATH=str(ROOT),
    )
    return env


def _fold_balance(records: list[object]) -> int:
    balance = 0
    for record in records:
        balance = getattr(record, "balance_after", balance)
    return balance


async def _deposits(app: Application, ids: list[str], count: int) -> None:
    for start in range(0, count, 100):
        await asyncio.gather(
            *(
                app.mediator.send(Deposit(ids[n % len(ids)], "1.00", ctx()))
                for n in range(start, min(count, start + 100))
            )
        )


async def _matches_the_topic(app: Application, ids: list[str]) -> bool:
    store = app.container.resolve(EventStore)
    read_model = app.container.resolve(AccountReadModel)
    for account_id in ids:
        records = await store.read(f"account-{account_id}")
        view = await read_model.get_account(account_id)
        balance = _fold_balance([decode_event(r) for r in records])
        if view is None or (view.balance, view.version) != (balance, records[-1].version):
            return False
    return True


async def test_projector_killed_mid_stream_resumes_with_nothing_applied_twice(
    tmp_path: Path,
) -> None:
    settings = settings_for("kafka+mongo", tmp_path / "api")
    async with running(settings, run_projector=False) as app:
        ids = [(await app.mediator.send(OpenAccount("EUR", ctx()))).id for _ in range(20)]
        await _deposits(app, ids, 3000)
        read_model = app.container.resolve(AccountReadModel)
        env = _environment(settings, tmp_path / "projector")
        command = [sys.executable, "-m", "api.cli", "projector"]
        log = (tmp_path / "projector.log").open("wb")
        projector = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(600):
                if await read_model.checkpoint(PROJECTION) > 0:
                    break
                await asyncio.sleep(0.05)
            projector.send_signal(signal.SIGKILL)
            projector.wait(timeout=10)
            killed_at = await read_model.checkpoint(PROJECTION)
            assert killed_at > 0, (tmp_path / "projector.log").read_text()
            # More commands while no projector runs, then a new projector process.
            await _deposits(app, ids, 500)
            projector = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            for _ in range(1200):
                if await _matches_the_topic(app, ids):
                    break
                await asyncio.sleep(0.1)
            assert await _matches_the_topic(app, ids), (tmp_path / "projector.log").read_text()
            for account_id in ids:
                statement = await read_model.statement(account_id, None, None, 0, 1000)
                versions = [m.version for m in statement]
                assert versions == sorted(set(versions)) == list(range(2, len(versions) + 2))
        finally:
            projector.terminate()
            projector.wait(timeout=20)
            log.close()


async def test_api_restart_continues_versions_and_keeps_every_acknowledged_event(
    tmp_path: Path,
) -> None:
    settings = settings_for("kafka+mongo", tmp_path / "api")
    acknowledged: list[str] = []
    async with running(settings) as app:
        account = await app.mediator.send(OpenAccount("EUR", ctx()))
        for _ in range(30):
            receipt = await app.mediator.send(Deposit(account.id, "1.00", ctx()))
            acknowledged.append(receipt.movement.id)
    async with running(settings) as app:
        receipt = await app.mediator.send(Deposit(account.id, "1.00", ctx()))
        acknowledged.append(receipt.movement.id)
        assert receipt.movement.version == 32
    # A plain consumer of the topic: every acknowledged event is there exactly once.
    values = settings.values
    consumer = Consumer(
        {
            "bootstrap.servers": values["kafka_bootstrap"],
            "group.id": f"{values['kafka_topic']}-check",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(values["kafka_topic"], timeout=10)
        partitions = metadata.topics[values["kafka_topic"]].partitions
        consumer.assign([TopicPartition(values["kafka_topic"], p, 0) for p in partitions])
        seen: list[str] = []
        for _ in range(100):
            messages = consumer.consume(1000, timeout=0.5)
            seen.extend(decode_record(m.value()).event_id for m in messages if not m.error())
            if not messages and len(seen) >= len(acknowledged):
                break
    finally:
        consumer.close()
    assert sorted(e for e in seen if e in set(acknowledged)) == sorted(acknowledged)
    assert len(seen) == len(set(seen))
