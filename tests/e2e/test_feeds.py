"""``GET /accounts/{id}/events`` over real HTTP, against ``balance serve`` processes: every
movement once and in version order under concurrent deposits, a resume with ``Last-Event-ID``
that misses and repeats nothing, the statement's access rules, the open-feed limit, a closed
account's last event, and the feeds ended when the server stops.

Time limits here are upper bounds that turn a hang into a failure; no verdict depends on speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from plugins.jwt.tokens import mint_token
from tests.production.bank import Server, money
from tests.support import settings_for

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("kafka+mongo", id="kafka+mongo", marks=[pytest.mark.kafka, pytest.mark.mongo]),
]
DEPOSITS: Final = 100
WAIT: Final = 120.0  # an upper bound on any one wait; never a verdict


@dataclass
class Event:
    id: int | None
    event: str | None
    data: Any


@dataclass
class Feed:
    """One open feed: its events as they arrive, and its comments."""

    response: httpx.Response
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    comments: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if "data" in fields:
                        ident = fields.get("id")
                        data = json.loads(fields["data"])
                        await self.events.put(
                            Event(int(ident) if ident else None, fields.get("event"), data)
                        )
                    fields = {}
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    async def take(self, count: int) -> list[Event]:
        return [await asyncio.wait_for(self.events.get(), WAIT) for _ in range(count)]


class Bank:
    def __init__(self, server: Server) -> None:
        self.server = server

    def headers(self, sub: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(self.server.settings, sub)}"}

    def client(self, sub: str = "alice") -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.server.base_url, headers=self.headers(sub), timeout=WAIT
        )

    async def open_account(self, sub: str = "alice") -> str:
        async with self.client(sub) as client:
            response = await client.post("/accounts", json={"currency": "EUR"})
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    @contextlib.asynccontextmanager
    async def feed(
        self, account: str, sub: str = "alice", headers: dict[str, str] | None = None, **params: Any
    ) -> AsyncIterator[Feed]:
        async with self.client(sub) as client:
            request = client.build_request(
                "GET", f"/accounts/{account}/events", headers=headers, params=params
            )
            response = await client.send(request, stream=True)
            feed = Feed(response)
            assert response.status_code == 200, (await response.aread()).decode()
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = asyncio.create_task(feed.read())
            try:
                yield feed
            finally:
                await response.aclose()
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def deposits(self, account: str, cents: list[int], clients: int = 10) -> None:
        async def one_client(index: int) -> None:
            async with self.client() as client:
                for amount in cents[index::clients]:
                    while True:
                        path = f"/accounts/{account}/deposits"
                        response = await client.post(path, json={"amount": money(amount)})
                        if response.status_code != 503:
                            break
                        await asyncio.sleep(0.2)
                    assert response.status_code == 201, response.text

        await asyncio.gather(*(one_client(index) for index in range(clients)))


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, backend: str, **values: str) -> AsyncIterator[Bank]:
    settings = settings_for(backend, tmp_path / "data", authenticator="jwt", **values)
    server = Server(settings, tmp_path / "server.log")
    await server.start()
    try:
        yield Bank(server)
    finally:
        await server.stop()


def _problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == f"/problems/{slug}"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_feed_gets_each_of_100_concurrent_deposits_once_in_version_order(
    backend: str, tmp_path: Path
) -> None:
    async with serving(tmp_path, backend) as bank:
        account = await bank.open_account()
        cents = list(range(1, DEPOSITS + 1))
        async with bank.feed(account) as feed:
            await bank.deposits(account, cents)
            events = await feed.take(DEPOSITS)
        assert [event.id for event in events] == list(range(2, DEPOSITS + 2))
        assert {event.event for event in events} == {"movement"}
        assert [event.data["version"] for event in events] == [event.id for event in events]
        assert sorted(event.data["amount"] for event in events) == sorted(map(money, cents))
        assert events[-1].data["balance_after"] == money(sum(cents))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_feed_resumed_with_last_event_id_misses_nothing_and_repeats_nothing(
    backend: str, tmp_path: Path
) -> None:
    async with serving(tmp_path, backend) as bank:
        account = await bank.open_account()
        deposits = asyncio.create_task(bank.deposits(account, [1] * DEPOSITS))
        async with bank.feed(account) as feed:
            first = await feed.take(40)
        # Deposits go on while nobody watches; the second feed starts after the last id seen.
        resume = {"Last-Event-ID": str(first[-1].id)}
        async with bank.feed(account, headers=resume) as feed:
            rest = await feed.take(DEPOSITS - 40)
        await deposits
        ids = [event.id for event in [*first, *rest]]
        assert ids == list(range(2, DEPOSITS + 2))
        # ``after`` resumes the same way.
        async with bank.feed(account, after=DEPOSITS) as feed:
            (last,) = await feed.take(1)
        assert last.id == DEPOSITS + 1


async def test_the_statement_rules_apply_and_the_open_feeds_are_limited(tmp_path: Path) -> None:
    async with serving(tmp_path, "sqlite", feeds_per_caller="2") as bank:
        account = await bank.open_account()
        async with bank.client("bob") as bob:
            _problem(await bob.get(f"/accounts/{account}/events"), 404, "account-not-found")
        write_only = mint_token(bank.server.settings, "alice", ("accounts:write",))
        async with httpx.AsyncClient(base_url=bank.server.base_url, timeout=WAIT) as client:
            headers = {"Authorization": f"Bearer {write_only}"}
            response = await client.get(f"/accounts/{account}/events", headers=headers)
            _problem(response, 403, "insufficient-scope")
        async with bank.client("alice") as alice:
            _problem(await alice.get("/accounts/nope/events"), 404, "account-not-found")
            bad = {"Last-Event-ID": "seven"}
            _problem(
                await alice.get(f"/accounts/{account}/events", headers=bad), 400, "invalid-header"
            )
            _problem(
                await alice.get(f"/accounts/{account}/events?after=-1"), 422, "validation-error"
            )
        async with bank.feed(account), bank.feed(account), bank.client("alice") as alice:
            _problem(await alice.get(f"/accounts/{account}/events"), 429, "too-many-feeds")
        # Both closed: the server notices the hang-ups and admits a feed again.
        async with bank.client("alice") as alice:
            for _ in range(int(WAIT * 10)):
                request = alice.build_request("GET", f"/accounts/{account}/events")
                response = await alice.send(request, stream=True)
                await response.aclose()
                if response.status_code == 200:
                    break
                _problem(response, 429, "too-many-feeds")
                await asyncio.sleep(0.1)
            assert response.status_code == 200


async def test_a_closed_accounts_feed_ends_with_the_close(tmp_path: Path) -> None:
    async with serving(tmp_path, "sqlite") as bank:
        account = await bank.open_account()
        async with bank.feed(account) as feed:
            await bank.deposits(account, [500], clients=1)
            async with bank.client() as client:
                path = f"/accounts/{account}/withdrawals"
                assert (await client.post(path, json={"amount": "5.00"})).status_code == 201
                assert (await client.delete(f"/accounts/{account}")).status_code == 204
            events = await feed.take(3)
            await asyncio.wait_for(feed.ended.wait(), WAIT)
        assert [(event.id, event.event) for event in events] == [
            (2, "movement"),
            (3, "movement"),
            (4, "closed"),
        ]
        assert events[-1].data["version"] == 4
        # Resuming after the close ends at once.
        async with bank.feed(account, headers={"Last-Event-ID": "4"}) as feed:
            await asyncio.wait_for(feed.ended.wait(), WAIT)
        assert feed.events.empty()


async def test_stopping_the_server_ends_the_open_feeds_and_exits_0(tmp_path: Path) -> None:
    async with serving(tmp_path, "sqlite") as bank:
        account = await bank.open_account()
        async with bank.feed(account) as feed:
            await bank.deposits(account, [1], clients=1)
            await feed.take(1)
            process = bank.server._process
            assert process is not None
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(feed.ended.wait(), WAIT)
            assert await asyncio.to_thread(process.wait, WAIT) == 0
