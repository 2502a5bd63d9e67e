"""A transfer whose source, destination and own record are written by three different instances
(each its own store behind uvicorn; the test's placement says which instance writes which
stream, as the Kafka store's partition ownership would). The transfer runs where its record is
written; each step runs at its account's writer, sent there signed to the internal endpoint.

Between an instance and the writer of an account the tests put a relay (``relay``) that can act
before passing a step on (spend the source's money, close the destination) or drop the answer,
so that the races and lost answers are deterministic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from core.http.peers import SIGNATURE_HEADER
from core.placement import Elsewhere
from core.ports import EventStore
from handlers.accounts.account import account_stream
from handlers.accounts.ids import derived_id
from handlers.accounts.transfer import transfer_stream
from tests.e2e.conftest import problem
from tests.e2e.test_routing import OTHER_SECRET, Instance, instance, listener

STEPS = "/internal/transfer-steps"
Before = Callable[[dict[str, Any]], Awaitable[None]]


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[tuple[Instance, Instance, Instance]]:
    """``a`` runs the transfers (their records are written there), ``b`` writes the sources,
    ``c`` the destinations."""
    async with (
        instance(tmp_path, "a") as a,
        instance(tmp_path, "b") as b,
        instance(tmp_path, "c") as c,
    ):
        yield a, b, c


async def accounts(
    trio: tuple[Instance, Instance, Instance], name: str, deposit: str = "100.00"
) -> tuple[str, str]:
    """A source at b holding ``deposit`` and an empty destination at c, placed there for a."""
    a, b, c = trio
    source = await b.open(f"{name}-source", deposit=deposit)
    destination = await c.open(f"{name}-destination")
    a.route(source, Elsewhere(b.url))
    a.route(destination, Elsewhere(c.url))
    return source, destination


async def balance(at: Instance, account: str) -> str:
    version = await at.version(account)
    response = await at.client.get(f"/accounts/{account}?min_version={version}", headers=at.auth())
    assert response.status_code == 200, response.text
    return str(response.json()["balance"])


async def event_types(at: Instance, stream: str) -> list[str]:
    store = at.application.container.resolve(EventStore)
    return [record.type for record in await store.read(stream)]


@asynccontextmanager
async def relay(
    target: Instance, before: Before | None = None, drop_first: str | None = None
) -> AsyncIterator[str]:
    """A relay to ``target``'s internal endpoint, as it is (signature included); yields its URL.
    ``before(step)`` runs before a step is passed on; the first step of type ``drop_first`` is
    executed at ``target`` and its answer dropped (the connection closed)."""
    dropped: list[str] = []

    async def on_request(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        step = json.loads(body)
        if before is not None:
            await before(step)
        target_path = head.split(b" ", 2)[1].decode()
        headers = {
            key: value
            for key, value in (
                line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if line
            )
            if key.lower() in (SIGNATURE_HEADER.lower(), "content-type")
        }
        answer = await target.client.post(target_path, content=body, headers=headers)
        if step["type"] == drop_first and not dropped:
            dropped.append(step["type"])
            writer.close()
            return
        writer.write(
            f"HTTP/1.1 {answer.status_code} OK\r\ncontent-type: application/json\r\n"
            f"content-length: {len(answer.content)}\r\nconnection: close\r\n\r\n".encode()
            + answer.content
        )
        await writer.drain()
        writer.close()

    async with listener(on_request) as url:
        yield url


async def test_a_transfer_between_three_instances_completes(
    trio: tuple[Instance, Instance, Instance],
) -> None:
    a, b, c = trio
    source, destination = await accounts(trio, "done")

    response = await a.post(
        "/transfers",
        {"source": source, "destination": destination, "amount": "30.00"},
        {"Idempotency-Key": "t-done"},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["amount"]) == ("completed", "30.00")
    record = transfer_stream(body["id"])
    assert body["id"] == derived_id("transfer", "alice", "t-done")
    # Each stream written by its writer only.
    assert await event_types(a, record) == ["TransferRequested", "TransferCompleted"]
    assert (await event_types(b, account_stream(source)))[-1] == "TransferDebited"
    assert (await event_types(c, account_stream(destination)))[-1] == "TransferCredited"
    assert await a.version(source) == await a.version(destination) == 0
    assert await event_types(b, record) == await event_types(c, record) == []
    assert (await balance(b, source), await balance(c, destination)) == ("70.00", "30.00")
    # The same key again: the first outcome, nothing moved twice.
    again = await a.post(
        "/transfers",
        {"source": source, "destination": destination, "amount": "30.00"},
        {"Idempotency-Key": "t-done"},
    )
    assert again.status_code == 201
    assert again.json() == body
    assert await b.version(source) == 3


async def test_a_transfer_sent_to_the_sources_writer_is_forwarded_to_its_records(
    trio: tuple[Instance, Instance, Instance],
) -> None:
    a, b, c = trio
    source, destination = await accounts(trio, "forwarded")
    b.placement.places[transfer_stream(derived_id("transfer", "alice", "t-fwd"))] = Elsewhere(a.url)
    b.route(destination, Elsewhere(c.url))

    response = await b.post(
        "/transfers",
        {"source": source, "destination": destination, "amount": "5.00"},
        {"Idempotency-Key": "t-fwd"},
    )

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "completed"
    assert await b.forwarded("answered") == 1
    assert await a.version(source) == 0  # the steps ran at b and c, not at a
    assert (await balance(b, source), await balance(c, destination)) == ("95.00", "5.00")


async def test_the_up_front_checks_run_at_the_accounts_writers(
    trio: tuple[Instance, Instance, Instance],
) -> None:
    """The source's rules and the destination's are decided on their writers' state, with the
    same answers as on one instance, and nothing is written."""
    a, b, c = trio
    source, destination = await accounts(trio, "checks", deposit="10.00")
    path, key = "/transfers", {"Idempotency-Key": "t-checks"}

    too_much = await a.post(
        path, {"source": source, "destination": destination, "amount": "11.00"}, key
    )
    problem(too_much, 422, "insufficient-funds")
    not_yours = await a.post(
        path, {"source": source, "destination": destination, "amount": "1.00"}, key, sub="mallory"
    )
    problem(not_yours, 404, "account-not-found")
    closed = await c.client.delete(f"/accounts/{destination}", headers=c.auth())
    assert closed.status_code == 204, closed.text
    to_closed = await a.post(
        path, {"source": source, "destination": destination, "amount": "1.00"}, key
    )
    problem(to_closed, 409, "account-closed")

    assert await event_types(a, transfer_stream(derived_id("transfer", "alice", "t-checks"))) == []
    assert await b.version(source) == 2


async def test_a_debit_refused_at_the_source_fails_the_transfer_and_moves_nothing(
    trio: tuple[Instance, Instance, Instance],
) -> None:
    """The source had the money at the check, and spent it before the debit: the debit is
    refused at the source's writer, and the transfer ends failed with the reason."""
    a, b, c = trio
    source, destination = await accounts(trio, "refused-debit", deposit="40.00")

    async def spend_first(step: dict[str, Any]) -> None:
        if step["type"] == "debit":
            spent = await b.post(f"/accounts/{source}/withdrawals", {"amount": "40.00"})
            assert spent.status_code == 201, spent.text

    async with relay(b, spend_first) as to_b:
        a.route(source, Elsewhere(to_b))
        response = await a.post(
            "/transfers", {"source": source, "destination": destination, "amount": "25.00"}
        )

    assert response.status_code == 201, response.text
    assert (response.json()["status"], response.json()["reason"]) == (
        "failed",
        "insufficient_funds",
    )
    assert await event_types(b, account_stream(source)) == [
        "AccountOpened",
        "MoneyDeposited",
        "MoneyWithdrawn",
    ]
    assert await event_types(c, account_stream(destination)) == ["AccountOpened"]
    assert await event_types(a, transfer_stream(response.json()["id"])) == [
        "TransferRequested",
        "TransferFailed",
    ]


async def test_a_credit_refused_at_the_destination_is_refunded(
    trio: tuple[Instance, Instance, Instance],
) -> None:
    """The destination was open at the check, and closed before the credit: the credit is
    refused at its writer, the source's writer gives the money back, the transfer fails."""
    a, b, c = trio
    source, destination = await accounts(trio, "refused-credit")

    async def close_first(step: dict[str, Any]) -> None:
        if step["type"] == "credit":
            closed = await c.client.delete(f"/accounts/{destination}", headers=c.auth())
            assert closed.status_code == 204, closed.text

    async with relay(c, close_first) as to_c:
        a.route(destination, Elsewhere(to_c))
        response = await a.post(
            "/transfers", {"source": source, "destination": destination, "amount": "25.00"}
        )

    assert response.status_code == 201, response.text
    assert (response.json()["status"], response.json()["reason"]) == ("failed", "account_closed")
    assert (await event_types(b, account_stream(source)))[-2:] == [
        "TransferDebited",
        "TransferRefunded",
    ]
    assert await event_types(c, account_stream(destination)) == ["AccountOpened", "AccountClosed"]
    assert await balance(b, source) == "100.00"


async def test_a_step_whose_answer_is_lost_is_sent_again_and_moves_money_once(
    trio: tuple[Instance, Instance, Instance],
) -> None:
    a, b, c = trio
    source, destination = await accounts(trio, "lost")

    async with relay(b, drop_first="debit") as to_b:
        a.route(source, Elsewhere(to_b))
        response = await a.post(
            "/transfers", {"source": source, "destination": destination, "amount": "10.00"}
        )

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "completed"
    debits = [t for t in await event_types(b, account_stream(source)) if t == "TransferDebited"]
    assert len(debits) == 1
    assert (await balance(b, source), await balance(c, destination)) == ("90.00", "10.00")


async def test_the_step_endpoint_refuses_a_message_not_signed_by_the_deployment(
    tmp_path: Path, trio: tuple[Instance, Instance, Instance]
) -> None:
    _a, b, _c = trio
    source = await b.open("unsigned-source", deposit="10.00")
    step = {
        "type": "debit",
        "transfer_id": "t-forged",
        "account_id": source,
        "destination": "elsewhere",
        "amount": 1000,
    }

    unsigned = await b.client.post(STEPS, json=step)
    problem(unsigned, 401, "invalid-token")
    with_a_token = await b.client.post(STEPS, json=step, headers=b.auth())
    problem(with_a_token, 401, "invalid-token")
    forged = await b.client.post(STEPS, json=step, headers={SIGNATURE_HEADER: "1700000000.00ff"})
    problem(forged, 401, "invalid-token")
    async with instance(tmp_path, "other", secret=OTHER_SECRET) as other:
        # Another deployment's instance signs with its own key: refused as well.
        other.route(source, Elsewhere(b.url))
        other.route("any-destination", Elsewhere(b.url))
        response = await other.post(
            "/transfers", {"source": source, "destination": "any-destination", "amount": "1.00"}
        )
        problem(response, 503, "store-unavailable")

    assert await b.version(source) == 2
    document = (await b.client.get("/schema/openapi.json")).json()
    assert not any(p.startswith("/internal") for p in document["paths"])


async def test_a_peer_that_does_not_answer_leaves_no_trace_before_the_record(
    trio: tuple[Instance, Instance, Instance],
) -> None:
    """The source's writer cannot be reached for the up-front check: 503, nothing written."""
    a, _b, _c = trio
    source, destination = await accounts(trio, "down")
    async with listener(lambda head, body, writer: _hang_up(writer)) as dead:
        a.route(source, Elsewhere(dead))
        response = await a.post(
            "/transfers",
            {"source": source, "destination": destination, "amount": "1.00"},
            {"Idempotency-Key": "t-down"},
        )
    problem(response, 503, "store-unavailable")
    assert await event_types(a, transfer_stream(derived_id("transfer", "alice", "t-down"))) == []


async def _hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()
