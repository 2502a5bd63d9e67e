"""The broker killed (SIGKILL) again and again while HTTP clients keep moving money.

The app is served by uvicorn on a local port, and eight clients send their commands over TCP at
the same time. Each client retries a command with the same Idempotency-Key until it gets a
definite answer, as a real client would. Every call must be answered (a success, or a typed 503
with Retry-After), the store must serve again after every restart without a restart of its own,
and at the end the money is conserved: what the store folds to is what was acknowledged, each
command exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import httpx
import msgspec
import pytest

from api.bootstrap import bootstrap
from core.ports import EventStore
from core.records import EventRecord, decode_record
from handlers.accounts import events as ev
from handlers.accounts.codec import decode_event
from plugins.jwt.tokens import mint_token
from plugins.kafka.store import KafkaEventStore
from tests.e2e.conftest import e2e_settings, served
from tests.kafka.helpers import broker_script, open_transactions, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.mongo]

CYCLES = 10
CLIENTS = 8
ACCOUNTS = 4
OPENING = 100_00  # each account opens with 100.00 EUR
# Upper bounds against hangs only; on a healthy run every wait ends long before them.
ANSWER_BOUND = 120.0  # one HTTP call
SETTLE_BOUND = 300.0  # one command, retried until definite
RECOVERY_BOUND = 180.0  # commands succeeding and /health/ready at 200 after a restart


def _kafka(action: str) -> None:
    broker_script(action)


def _text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


@dataclass
class Ledger:
    """What the clients were told."""

    net: Counter[str] = field(default_factory=Counter)  # account → acknowledged net cents
    acknowledged: dict[str, str] = field(default_factory=dict)  # idempotency key → event id
    answers: Counter[str] = field(default_factory=Counter)  # status and problem type → count
    last_success_sent: float = 0.0  # when the latest successful call was sent (monotonic)


async def _until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def _slug(response: httpx.Response) -> str:
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return ""
    return str(response.json().get("type", "")).rsplit("/", 1)[-1]


async def _settle(
    client: httpx.AsyncClient, ledger: Ledger, account: str, kind: str, cents: int
) -> None:
    """One command, sent again under the same Idempotency-Key until its outcome is definite."""
    key = uuid4().hex
    deadline = time.monotonic() + SETTLE_BOUND
    while True:
        assert time.monotonic() < deadline, f"{kind} {key} had no definite outcome"
        sent = time.monotonic()
        try:
            response = await client.post(
                f"/accounts/{account}/{kind}",
                json={"amount": _text(cents)},
                headers={"Idempotency-Key": key},
            )
        except httpx.TimeoutException:
            pytest.fail(f"{kind} {key} got no answer in {ANSWER_BOUND:.0f} s")
        slug = _slug(response)
        ledger.answers[f"{response.status_code} {slug}".strip()] += 1
        if response.status_code == 201:
            body = response.json()
            assert body["amount"] == _text(cents), body
            assert ledger.acknowledged.setdefault(key, body["id"]) == body["id"], body
            ledger.net[account] += cents if kind == "deposits" else -cents
            ledger.last_success_sent = max(ledger.last_success_sent, sent)
            return
        if (response.status_code, slug) == (422, "insufficient-funds"):
            return  # refused: nothing written
        if (response.status_code, slug) == (503, "store-unavailable"):
            assert int(response.headers["retry-after"]) > 0
        elif (response.status_code, slug) != (409, "concurrent-update"):
            pytest.fail(f"{kind} {key}: unexpected answer {response.status_code} {response.text}")
        await asyncio.sleep(0.2)  # 503 and 409: nothing known written; the same key again


async def _client(
    client: httpx.AsyncClient, ledger: Ledger, accounts: list[str], stop: asyncio.Event
) -> None:
    rng = random.Random()
    while not stop.is_set():
        account = rng.choice(accounts)
        if rng.random() < 0.6:
            await _settle(client, ledger, account, "deposits", rng.randint(1, 500))
        else:
            await _settle(client, ledger, account, "withdrawals", rng.randint(1, 400))


def _failed(tasks: list[asyncio.Task[None]]) -> bool:
    return any(task.done() for task in tasks)


def _raise_failures(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        if task.done():
            task.result()  # a client's assertion, raised here
            pytest.fail("a client stopped before the end")


async def _until_ready(client: httpx.AsyncClient, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while (await client.get("/health/ready")).status_code != 200:
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def _cycle(
    client: httpx.AsyncClient,
    store: KafkaEventStore,
    ledger: Ledger,
    clients: list[asyncio.Task[None]],
    cycle: int,
) -> None:
    """Kill the broker while commands flow, start it again, and wait for them to succeed."""
    served = ledger.answers["201"]
    await _until(
        lambda: ledger.answers["201"] >= served + CLIENTS or _failed(clients),
        RECOVERY_BOUND,
        f"cycle {cycle}: no load before the kill",
    )
    _raise_failures(clients)
    await asyncio.to_thread(_kafka, "kill")
    await asyncio.to_thread(_kafka, "start")
    restarted = time.monotonic()
    await _until(
        lambda: ledger.last_success_sent > restarted or _failed(clients),
        RECOVERY_BOUND,
        f"cycle {cycle}: no command succeeded after the broker came back",
    )
    _raise_failures(clients)
    await _until_ready(client, RECOVERY_BOUND, f"cycle {cycle}: /health/ready stays 503")
    assert store.writer.alive, f"cycle {cycle}: the writer thread ended"


def _fold(records: list[EventRecord]) -> tuple[int, int]:
    """(sum of the movements, the last balance_after) of an account's events."""
    total = balance = 0
    for record in records:
        event = decode_event(record)
        if isinstance(event, ev.MoneyDeposited):
            total += event.amount
        elif isinstance(event, ev.MoneyWithdrawn):
            total -= event.amount
        else:
            continue
        assert event.balance_after == total, (record, total)
        balance = event.balance_after
    return total, balance


def _events_on_topic(bootstrap_servers: str, topic: str) -> list[EventRecord]:
    events = []
    for message in read_topic(bootstrap_servers, topic):
        try:
            events.append(decode_record(message.value() or b""))
        except msgspec.DecodeError:
            continue  # an empty record that ended a transaction left open (writer.py)
    return events


async def test_commands_survive_repeated_broker_kills_under_load(tmp_path: Path) -> None:
    settings = e2e_settings(tmp_path, "kafka+mongo")
    application = bootstrap(settings)
    store = application.container.resolve(EventStore)
    assert isinstance(store, KafkaEventStore)
    token = mint_token(settings, "alice", ("accounts:read", "accounts:write"))
    async with (
        served(application, RECOVERY_BOUND) as url,
        httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=ANSWER_BOUND,
            limits=httpx.Limits(max_connections=CLIENTS + 2),
        ) as client,
    ):
        accounts = []
        for _ in range(ACCOUNTS):
            opened = await client.post(
                "/accounts", json={"currency": "EUR", "initial_deposit": _text(OPENING)}
            )
            assert opened.status_code == 201, opened.text
            accounts.append(opened.json()["id"])
        ledger = Ledger()
        stop = asyncio.Event()
        clients = [
            asyncio.create_task(_client(client, ledger, accounts, stop)) for _ in range(CLIENTS)
        ]
        try:
            for cycle in range(1, CYCLES + 1):
                await _cycle(client, store, ledger, clients, cycle)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*clients), SETTLE_BOUND)
        finally:
            stop.set()
            for task in clients:
                task.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
            await asyncio.to_thread(_kafka, "start")  # if a failure left it killed

        print(f"answers over {CYCLES} kills: {dict(ledger.answers)}")
        assert ledger.answers["201"] > CYCLES * CLIENTS, ledger.answers
        assert ledger.answers["503 store-unavailable"] > 0, "no outage was seen by any client"
        assert store.writer.alive
        landed: dict[str, str] = {}
        read: list[EventRecord] = []
        for account in accounts:
            records = await store.read(f"account-{account}")
            read += records
            total, balance = _fold(records)
            assert total == balance == OPENING + ledger.net[account], (account, ledger.answers)
            keys = [r.metadata.command_id for r in records if r.metadata.command_id]
            assert len(keys) == len(set(keys)), f"a command was written twice in {account}"
            landed.update(
                (r.metadata.command_id, r.event_id) for r in records if r.metadata.command_id
            )
        assert landed == ledger.acknowledged, "the store holds exactly the acknowledged commands"
        # The index the reads came from, against the topic itself. An outage may leave a
        # transaction open on a partition, which hides everything after it from read_committed
        # readers: the writer ends it by itself, with no further append to prompt it.
        values = settings.values
        held = await asyncio.to_thread(
            open_transactions, values["kafka_bootstrap"], values["kafka_topic"]
        )
        waited_until = time.monotonic() + SETTLE_BOUND
        while held and time.monotonic() < waited_until:
            await asyncio.sleep(0.5)
            held = await asyncio.to_thread(
                open_transactions, values["kafka_bootstrap"], values["kafka_topic"]
            )
        assert not held, f"transactions still open on partitions {held}"
        on_topic = await asyncio.to_thread(
            _events_on_topic, values["kafka_bootstrap"], values["kafka_topic"]
        )
        streams = {f"account-{a}" for a in accounts}
        assert sorted(r.event_id for r in on_topic if r.stream_id in streams) == sorted(
            r.event_id for r in read
        )
