"""Two instances behind uvicorn, each with its own store: commands for an account that the other
one writes are forwarded to it, with the caller's token, Idempotency-Key and request id, and
its answer comes back as it left. The placement is the test's: it names the streams the other
instance writes (``core.placement``), as the Kafka store's partition ownership would."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.bootstrap import Application, bootstrap
from core.config import Settings
from core.placement import HERE, Elsewhere, Moving, Placement, StreamPlacement
from core.ports import EventStore
from handlers.accounts.account import account_stream
from handlers.accounts.ids import derived_id
from plugins.jwt.tokens import mint_token
from tests.e2e.conftest import e2e_settings, free_port, problem, served
from tests.support import FencedStore

SECRET = "a-shared-secret-of-at-least-32-bytes"
OTHER_SECRET = "another-secret-of-at-least-32-bytes!"
BOUND = 60.0  # the servers' start and stop, against hangs only


@dataclass
class Chosen:
    """Places the streams it was told about; every other stream is written here."""

    places: dict[str, Placement]

    def place(self, stream_id: str) -> Placement:
        return self.places.get(stream_id, HERE)


@dataclass
class Instance:
    url: str
    application: Application
    settings: Settings
    placement: Chosen
    client: httpx.AsyncClient

    def auth(self, sub: str = "alice") -> dict[str, str]:
        token = mint_token(self.settings, sub, ("accounts:read", "accounts:write"))
        return {"Authorization": f"Bearer {token}"}

    async def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None, **auth: str
    ) -> httpx.Response:
        sent = {**self.auth(**auth), **(headers or {})}
        return await self.client.post(path, json=body, headers=sent)

    async def open(self, key: str, deposit: str | None = None) -> str:
        body = {"currency": "EUR"} | ({"initial_deposit": deposit} if deposit else {})
        response = await self.post("/accounts", body, {"Idempotency-Key": key})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def version(self, account_id: str) -> int:
        store = self.application.container.resolve(EventStore)
        return await store.stream_version(account_stream(account_id))

    async def forwarded(self, outcome: str) -> float:
        text = (await self.client.get("/metrics")).text
        found = re.search(
            rf'^balance_forwarded_requests_total{{outcome="{outcome}"}} (\S+)$', text, re.M
        )
        assert found is not None, text
        return float(found.group(1))

    def route(self, account_id: str, where: Placement) -> None:
        self.placement.places[account_stream(account_id)] = where


@asynccontextmanager
async def instance(
    tmp_path: Path,
    name: str,
    secret: str = SECRET,
    store: FencedStore | None = None,
    **values: str,
) -> AsyncIterator[Instance]:
    """An instance on the memory backends (``store``: on that event store instead)."""
    settings = e2e_settings(tmp_path / name, "memory", jwt_secret=secret, **values)
    plugins: dict[str, object] = {}
    if store is not None:
        settings = replace(settings, event_store="fenced")
        plugins["fenced"] = store.plugin
    placement = Chosen({})
    application = bootstrap(settings, overrides={StreamPlacement: placement}, extra_plugins=plugins)
    async with (
        served(application, BOUND) as url,
        httpx.AsyncClient(base_url=url, timeout=BOUND) as client,
    ):
        yield Instance(url, application, settings, placement, client)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Instance, Instance]]:
    async with instance(tmp_path, "a") as a, instance(tmp_path, "b") as b:
        yield a, b


async def test_a_deposit_sent_to_one_instance_is_executed_at_the_owner(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    account = await b.open("open-1", deposit="10.00")
    a.route(account, Elsewhere(b.url))

    response = await a.post(
        f"/accounts/{account}/deposits",
        {"amount": "5.00", "description": "rent"},
        {"If-Match": '"2"', "X-Request-ID": "req-forwarded-1"},
    )

    assert response.status_code == 201, response.text
    assert response.headers["etag"] == '"3"'
    assert response.headers["x-request-id"] == "req-forwarded-1"
    body = response.json()
    assert (body["amount"], body["balance_after"], body["version"]) == ("5.00", "15.00", 3)
    # Written at the owner, under the caller's identity and request id; nothing here.
    assert await b.version(account) == 3
    assert await a.version(account) == 0
    store = b.application.container.resolve(EventStore)
    deposited = (await store.read(account_stream(account), after_version=2))[0]
    assert deposited.metadata.actor == "alice"
    assert deposited.metadata.correlation_id == "req-forwarded-1"
    assert await a.forwarded("answered") == 1
    # The owner's refusals come back as they are, If-Match included.
    stale = await a.post(f"/accounts/{account}/deposits", {"amount": "1.00"}, {"If-Match": '"2"'})
    problem(stale, 412, "precondition-failed")
    assert await b.version(account) == 3


async def test_a_withdrawal_is_decided_on_the_owners_state(
    pair: tuple[Instance, Instance],
) -> None:
    """Both instances hold the account (opened with one key), and only the owner's copy has the
    money: decided on this instance's copy, the withdrawal would be refused for insufficient
    funds."""
    a, b = pair
    account = await a.open("open-2")
    assert await b.open("open-2") == account
    deposit = await b.post(f"/accounts/{account}/deposits", {"amount": "100.00"})
    assert deposit.status_code == 201, deposit.text
    a.route(account, Elsewhere(b.url))

    response = await a.post(f"/accounts/{account}/withdrawals", {"amount": "60.00"})

    assert response.status_code == 201, response.text
    assert response.json()["balance_after"] == "40.00"
    assert (await a.version(account), await b.version(account)) == (1, 3)


async def test_the_owner_authenticates_the_caller(tmp_path: Path) -> None:
    """The owner checks the caller's own token: a token this instance accepts but the owner
    does not is the owner's 401, and nothing is written."""
    async with (
        instance(tmp_path, "a", secret=OTHER_SECRET) as a,
        instance(tmp_path, "b", secret=SECRET) as b,
    ):
        account = await b.open("open-3")
        a.route(account, Elsewhere(b.url))
        assert (await a.client.get("/accounts", headers=a.auth())).status_code == 200

        response = await a.post(f"/accounts/{account}/deposits", {"amount": "5.00"})

        problem(response, 401, "invalid-token")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert await a.forwarded("answered") == 1
        assert await b.version(account) == 1


async def test_an_append_refused_as_owned_elsewhere_is_forwarded(tmp_path: Path) -> None:
    """The placement said "here", and the store refused the append: ownership moved between the
    check and the write. Nothing was written here, and the owner executes the command."""
    store = FencedStore()
    async with instance(tmp_path, "a", store=store) as a, instance(tmp_path, "b") as b:
        account = await a.open("open-13")
        assert await b.open("open-13") == account
        store.fenced[account_stream(account)] = b.url

        response = await a.post(f"/accounts/{account}/deposits", {"amount": "5.00"})

        assert response.status_code == 201, response.text
        assert (await a.version(account), await b.version(account)) == (1, 2)
        assert await a.forwarded("answered") == 1


async def test_a_credit_refused_by_the_store_leaves_the_transfer_pending_without_a_forward(
    tmp_path: Path,
) -> None:
    """The transfer runs here, where its record is written, and the store refuses the credit of
    its destination again and again (ownership moved, and this instance has not heard yet): the
    credit gets no definite answer, the transfer stays pending, and the caller gets 503. The
    request is not forwarded: the transfer belongs here."""
    store = FencedStore()
    async with instance(tmp_path, "a", store=store) as a, instance(tmp_path, "b") as b:
        source = await a.open("open-14", deposit="10.00")
        destination = await a.open("open-15")
        store.fenced[account_stream(destination)] = b.url

        response = await a.post(
            "/transfers", {"source": source, "destination": destination, "amount": "1.00"}
        )

        problem(response, 503, "store-unavailable")
        assert await a.forwarded("answered") == await a.forwarded("unreachable") == 0


async def test_a_repeated_forwarded_deposit_lands_once(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    account = await b.open("open-4")
    a.route(account, Elsewhere(b.url))
    path = f"/accounts/{account}/deposits"
    key = {"Idempotency-Key": "deposit-4"}

    first = await a.post(path, {"amount": "7.00"}, key)
    again = await a.post(path, {"amount": "7.00"}, key)
    at_owner = await b.post(path, {"amount": "7.00"}, key)

    assert first.status_code == again.status_code == at_owner.status_code == 201, first.text
    assert first.json() == again.json() == at_owner.json()
    assert first.headers["etag"] == again.headers["etag"] == '"2"'
    assert await b.version(account) == 2


async def test_an_open_with_a_key_is_forwarded_and_a_transfer_sends_its_steps(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    # The account a key opens is known before it exists, so its future owner opens it.
    keyed = derived_id("alice", "open-5")
    a.route(keyed, Elsewhere(b.url))
    opened = await a.post(
        "/accounts", {"currency": "EUR", "initial_deposit": "50.00"}, {"Idempotency-Key": "open-5"}
    )
    assert opened.status_code == 201, opened.text
    assert opened.headers["location"] == f"/accounts/{keyed}"
    assert opened.headers["etag"] == '"2"'
    assert (await a.version(keyed), await b.version(keyed)) == (0, 2)
    destination = await b.open("open-6")
    a.route(destination, Elsewhere(b.url))

    # Without a key the transfer's record gets an id written here: it runs here, and its
    # steps on the two accounts run at b.
    transfer = await a.post(
        "/transfers", {"source": keyed, "destination": destination, "amount": "20.00"}
    )

    assert transfer.status_code == 201, transfer.text
    assert transfer.json()["status"] == "completed"
    assert transfer.headers["location"] == f"/transfers/{transfer.json()['id']}"
    assert (await b.version(keyed), await b.version(destination)) == (3, 2)
    assert await a.forwarded("answered") == 1
    store = a.application.container.resolve(EventStore)
    assert await store.stream_version(f"transfer-{transfer.json()['id']}") == 2


async def test_a_close_is_forwarded(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    account = await b.open("open-8")
    a.route(account, Elsewhere(b.url))

    response = await a.client.delete(f"/accounts/{account}", headers=a.auth())

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await b.version(account) == 2


async def test_instances_that_disagree_about_the_owner_answer_503_after_the_hop_limit(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    account = await b.open("open-9")
    a.route(account, Elsewhere(b.url))
    b.route(account, Elsewhere(a.url))

    response = await a.post(f"/accounts/{account}/deposits", {"amount": "5.00"})

    body = problem(response, 503, "store-unavailable")
    assert "changing hands" in body["detail"]
    assert int(response.headers["retry-after"]) >= 1
    # a → b → a, where the hop limit (2) stops it: one forward each, nothing written.
    assert (await a.forwarded("answered"), await b.forwarded("answered")) == (1, 1)
    assert (await a.version(account), await b.version(account)) == (0, 1)


async def test_a_moving_account_is_503_with_retry_after_and_nothing_written(
    pair: tuple[Instance, Instance],
) -> None:
    a, b = pair
    account = await b.open("open-10")
    b.route(account, Moving(retry_after=7.0))

    response = await b.post(f"/accounts/{account}/withdrawals", {"amount": "5.00"})
    through_a = await a.post(f"/accounts/{account}/deposits", {"amount": "5.00"})  # not routed

    problem(response, 503, "store-unavailable")
    assert response.headers["retry-after"] == "7"
    problem(through_a, 404, "account-not-found")  # a writes it: a's own answer
    a.route(account, Elsewhere(b.url))
    moving_at_owner = await a.post(f"/accounts/{account}/deposits", {"amount": "5.00"})
    problem(moving_at_owner, 503, "store-unavailable")
    assert moving_at_owner.headers["retry-after"] == "7"
    assert await b.version(account) == 1


async def test_an_owner_that_is_down_is_503_not_500(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    account = await b.open("open-11")
    a.route(account, Elsewhere(f"http://127.0.0.1:{free_port()}"))

    response = await a.post(f"/accounts/{account}/deposits", {"amount": "5.00"})

    body = problem(response, 503, "store-unavailable")
    assert "did not answer" in body["detail"]
    assert "127.0.0.1" not in body["detail"]
    assert int(response.headers["retry-after"]) >= 1
    assert await a.forwarded("unreachable") == 1


@asynccontextmanager
async def listener(
    on_request: Any,
) -> AsyncIterator[str]:
    """A TCP server on a free port whose connections ``on_request(head, body, writer)`` takes;
    yields its URL. Connections still open at the end are closed."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        body = await reader.readexactly(int(length.group(1)) if length else 0)
        await on_request(head, body, writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_owner_that_does_not_answer_in_time_is_503(tmp_path: Path) -> None:
    async def silent(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        pass  # reads the request and never answers

    async with (
        listener(silent) as url,
        instance(tmp_path, "a", forward_timeout="0.2") as a,
    ):
        a.route("acc-1", Elsewhere(url))
        response = await a.post("/accounts/acc-1/deposits", {"amount": "5.00"})

        problem(response, 503, "store-unavailable")
        assert await a.forwarded("unreachable") == 1


async def test_a_lost_answer_is_recovered_by_retrying_with_the_same_key(
    pair: tuple[Instance, Instance],
) -> None:
    """The owner executes the command and answers, and the connection breaks before the answer
    is back: the caller gets 503, and its retry with the same Idempotency-Key returns the first
    result without writing again."""
    a, b = pair
    account = await b.open("open-12")

    async def executes_then_hangs_up(
        head: bytes, body: bytes, writer: asyncio.StreamWriter
    ) -> None:
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        headers = [
            tuple(line.split(": ", 1))
            for line in head.decode("latin-1").split("\r\n")[1:]
            if line and not line.lower().startswith(("host:", "content-length:"))
        ]
        await b.client.request(method, target, headers=headers, content=body)
        writer.close()

    async with listener(executes_then_hangs_up) as lossy:
        a.route(account, Elsewhere(lossy))
        key = {"Idempotency-Key": "deposit-12"}
        path = f"/accounts/{account}/deposits"
        lost = await a.post(path, {"amount": "9.00"}, key)
        problem(lost, 503, "store-unavailable")
        assert await b.version(account) == 2  # executed all the same

        a.route(account, Elsewhere(b.url))
        retried = await a.post(path, {"amount": "9.00"}, key)

    assert retried.status_code == 201, retried.text
    assert retried.json()["version"] == 2
    assert await b.version(account) == 2


async def test_a_malformed_hop_count_is_a_400(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    account = await b.open("open-16")
    a.route(account, Elsewhere(b.url))

    response = await a.post(
        f"/accounts/{account}/deposits", {"amount": "5.00"}, {"Balance-Forward-Hops": "many"}
    )

    body = problem(response, 400, "invalid-header")
    assert body["field"] == "Balance-Forward-Hops"
    assert await b.version(account) == 1
