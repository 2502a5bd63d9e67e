"""The broker stopped during commands: clients get 503 with Retry-After, never a false 201, and
nothing of the refused command is written; once the broker is back, the service works again
without a restart."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from core.ports import EventStore
from tests.e2e.conftest import AppFactory, problem
from tests.kafka.helpers import broker_script

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]


def _kafka(action: str) -> None:
    broker_script(action)


async def test_broker_down_gives_503_never_a_false_201_and_recovers(
    make_api: AppFactory,
) -> None:
    async with make_api(backend="kafka+mongo") as api:
        account = (await api.open(deposit="10.00"))["id"]
        _kafka("stop")
        try:
            refused = await api.move("deposits", account, "1.00")
            problem(refused, 503, "store-unavailable")
            assert int(refused.headers["retry-after"]) > 0
        finally:
            _kafka("start")
        for _ in range(60):
            accepted = await api.move("deposits", account, "2.00")
            if accepted.status_code == 201:
                break
            await asyncio.sleep(0.5)
        assert accepted.status_code == 201, accepted.text
        store = api.application.container.resolve(EventStore)
        records = await store.read(f"account-{account}")
        amounts = [msgspec.json.decode(r.data)["amount"] for r in records[2:]]
        assert amounts == [200], "the refused deposit must not have been written"
        # The projection reconnects by itself too (min_version waits up to 2 s per read); until
        # its consumer group has joined, the account may not even be in the read model (404).
        for _ in range(30):
            view = (await api.account(account, min_version=records[-1].version)).json()
            if view.get("version") == records[-1].version:
                break
        assert (view.get("balance"), view.get("version")) == ("12.00", records[-1].version), view
