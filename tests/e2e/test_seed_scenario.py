"""The seed scenario over HTTP on each backend (embedded, and Kafka + MongoDB on the real
servers): two accounts, deposits, withdrawals, balances and statements."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import AppFactory
from tests.support import SCENARIO_BACKENDS


@pytest.mark.parametrize("backend", SCENARIO_BACKENDS)
async def test_seed_scenario(make_api: AppFactory, backend: str) -> None:
    async with make_api(backend=backend) as api:
        a = (await api.open())["id"]
        b = (await api.open())["id"]
        for account, kind, amount in [
            (a, "deposits", "500.00"),
            (b, "deposits", "300.00"),
            (b, "withdrawals", "100.00"),
            (a, "withdrawals", "200.00"),
        ]:
            response = await api.move(kind, account, amount)
            assert response.status_code == 201, response.text
            assert response.headers["etag"] == f'"{response.json()["version"]}"'

        view_a = (await api.account(a, min_version=3)).json()
        view_b = (await api.account(b, min_version=3)).json()
        assert (view_a["balance"], view_b["balance"]) == ("300.00", "200.00")

        statement = await api.call("GET", f"/accounts/{a}/transactions?min_version=3")
        lines = [
            (item["kind"], item["amount"], item["balance_after"])
            for item in statement.json()["items"]
        ]
        assert lines == [("deposit", "500.00", "500.00"), ("withdrawal", "200.00", "300.00")]
        listed = (await api.call("GET", "/accounts")).json()["items"]
        assert {item["id"]: item["balance"] for item in listed} == {a: "300.00", b: "200.00"}
