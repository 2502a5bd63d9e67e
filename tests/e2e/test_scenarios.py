"""The scenario suite over HTTP on every backend: concurrency, transfers, idempotency and
authorization behave the same on the embedded default and on Kafka + MongoDB."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import AppFactory, problem
from tests.support import SCENARIO_BACKENDS

pytestmark = pytest.mark.parametrize("backend", SCENARIO_BACKENDS)


async def test_fifty_concurrent_withdrawals(make_api: AppFactory, backend: str) -> None:
    async with make_api(backend=backend) as api:
        account = (await api.open(deposit="100.00"))["id"]
        responses = await asyncio.gather(
            *(api.move("withdrawals", account, "10.00") for _ in range(50))
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] * 10 + [422] * 40
        for refused in (r for r in responses if r.status_code == 422):
            problem(refused, 422, "insufficient-funds")
        versions = sorted(r.json()["version"] for r in responses if r.status_code == 201)
        assert versions == list(range(3, 13))
        view = (await api.account(account, min_version=12)).json()
        assert (view["balance"], view["version"]) == ("0.00", 12)


async def test_transfers_complete_or_fail_with_the_rule(make_api: AppFactory, backend: str) -> None:
    async with make_api(backend=backend) as api:
        source = (await api.open(deposit="100.00"))["id"]
        destination = (await api.open(as_="bob"))["id"]
        body = {"source": source, "destination": destination, "amount": "30.00"}
        done = await api.call("POST", "/transfers", json=body)
        assert done.status_code == 201, done.text
        assert (done.json()["status"], done.json()["amount"]) == ("completed", "30.00")
        too_much = await api.call("POST", "/transfers", json={**body, "amount": "70.01"})
        problem(too_much, 422, "insufficient-funds")
        stolen = await api.call("POST", "/transfers", "bob", json={**body, "amount": "1.00"})
        problem(stolen, 404, "account-not-found")
        assert (await api.account(source, min_version=3)).json()["balance"] == "70.00"
        seen = await api.account(destination, "bob", min_version=2)
        assert seen.json()["balance"] == "30.00"


async def test_idempotency_key_replays_and_refuses_reuse(
    make_api: AppFactory, backend: str
) -> None:
    async with make_api(backend=backend) as api:
        account = (await api.open())["id"]
        key = {"Idempotency-Key": "dep-42"}
        first = await api.move("deposits", account, "12.34", headers=key)
        again = await api.move("deposits", account, "12.34", headers=key)
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        reused = await api.move("deposits", account, "99.00", headers=key)
        problem(reused, 422, "idempotency-key-reused")
        view = (await api.account(account, min_version=2)).json()
        assert (view["balance"], view["version"]) == ("12.34", 2)


async def test_another_customer_never_sees_the_account(make_api: AppFactory, backend: str) -> None:
    async with make_api(backend=backend) as api:
        account = (await api.open(deposit="5.00"))["id"]
        for method, path, body in [
            ("GET", f"/accounts/{account}", None),
            ("GET", f"/accounts/{account}/transactions", None),
            ("GET", f"/accounts/{account}/balance?at=2030-01-01T00:00:00Z", None),
            ("POST", f"/accounts/{account}/deposits", {"amount": "1.00"}),
            ("POST", f"/accounts/{account}/withdrawals", {"amount": "1.00"}),
            ("DELETE", f"/accounts/{account}", None),
        ]:
            response = await api.call(method, path, "bob", json=body)
            problem(response, 404, "account-not-found")
        assert (await api.account(account, min_version=2)).json()["balance"] == "5.00"
