"""Statements (paging, time filters), the balance at an instant, and read-your-writes with
``min_version``. Events are placed at chosen instants with the fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import pytest

from handlers.accounts.readmodel import AccountReadModel, ViewChange
from plugins.memory import MemoryReadModel
from tests.e2e.conftest import Api, AppFactory, problem
from tests.support import FakeClock

T0 = "2026-01-01T12:00:00Z"


async def _history(api: Api, clock: FakeClock) -> str:
    """An account opened at 12:00 with 100.00, then +10.00 each hour until 17:00 (150.00)."""
    account = (await api.open(deposit="100.00"))["id"]
    for _ in range(5):
        clock.advance(hours=1)
        assert (await api.move("deposits", account, "10.00")).status_code == 201
    return account


async def _statement(api: Api, account: str, query: str = "") -> Any:
    response = await api.call("GET", f"/accounts/{account}/transactions?min_version=7&{query}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_statement_items_look_like_the_deposit_response(api: Api) -> None:
    account = (await api.open())["id"]
    deposit = (await api.move("deposits", account, "5.00")).json()
    page = (await api.call("GET", f"/accounts/{account}/transactions?min_version=2")).json()
    assert page == {"items": [deposit], "next_cursor": None}


async def test_statement_pages_with_a_cursor(api: Api, clock: FakeClock) -> None:
    account = await _history(api, clock)
    amounts: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await _statement(api, account, query)
        amounts += [item["balance_after"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert amounts == ["100.00", "110.00", "120.00", "130.00", "140.00", "150.00"]
    problem(
        await api.call("GET", f"/accounts/{account}/transactions?cursor=bm9wZQ"),
        422,
        "invalid-request",
    )


async def test_statement_from_and_to(api: Api, clock: FakeClock) -> None:
    account = await _history(api, clock)
    # 13:00 <= occurred_at < 15:00 (to is exclusive)
    page = await _statement(api, account, "from=2026-01-01T13:00:00Z&to=2026-01-01T15:00:00Z")
    assert [item["balance_after"] for item in page["items"]] == ["110.00", "120.00"]
    # the same instants with an offset, "+" escaped, and "+" left as a space by a lazy client
    escaped = quote("2026-01-01T14:00:00+01:00")
    page = await _statement(api, account, f"from={escaped}&to=2026-01-01T15:00:00 01:00")
    assert [item["balance_after"] for item in page["items"]] == ["110.00"]
    only_from = await _statement(api, account, "from=2026-01-01T15:30:00Z")
    assert [item["balance_after"] for item in only_from["items"]] == ["140.00", "150.00"]
    only_to = await _statement(api, account, "to=2026-01-01T12:00:01Z")
    assert [item["kind"] for item in only_to["items"]] == ["deposit"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-01-01T13:00:00", "from"),
        ("to=yesterday", "to"),
        ("from=2026-13-01T00:00:00Z", "from"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("min_version=-1", "min_version"),
    ],
)
async def test_statement_parameters_are_checked(
    api: Api, clock: FakeClock, query: str, field: str
) -> None:
    account = (await api.open())["id"]
    response = await api.call("GET", f"/accounts/{account}/transactions?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


async def test_balance_at_instants_between_events(api: Api, clock: FakeClock) -> None:
    account = await _history(api, clock)

    async def at(instant: str) -> Any:
        response = await api.call("GET", f"/accounts/{account}/balance?at={quote(instant)}")
        assert response.status_code == 200, response.text
        return response.json()

    before = await at("2026-01-01T11:59:59Z")
    assert (before["balance"], before["version"]) == ("0.00", 0)
    opened = await at(T0)
    assert (opened["balance"], opened["version"]) == ("100.00", 2)
    between = await at("2026-01-01T14:30:00Z")
    assert between == {
        "account": account,
        "at": "2026-01-01T14:30:00Z",
        "balance": "120.00",
        "currency": "EUR",
        "version": 4,
    }
    same_instant_other_zone = await at("2026-01-01T15:30:00+01:00")
    assert same_instant_other_zone["balance"] == "120.00"
    assert (await at("2030-01-01T00:00:00Z"))["balance"] == "150.00"
    now = (await api.call("GET", f"/accounts/{account}/balance")).json()
    assert now["balance"] == "150.00"


async def test_balance_at_needs_an_offset(api: Api) -> None:
    account = (await api.open())["id"]
    naive = await api.call("GET", f"/accounts/{account}/balance?at=2026-01-01T12:00:00")
    assert problem(naive, 422, "invalid-request")["field"] == "at"
    garbage = await api.call("GET", f"/accounts/{account}/balance?at=soon")
    assert problem(garbage, 422, "invalid-request")["field"] == "at"


class _SlowReadModel:
    """The memory read model, applying each projected batch late."""

    def __init__(self, delay: float) -> None:
        self.inner = MemoryReadModel()
        self.delay = delay

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        await asyncio.sleep(self.delay)
        await self.inner.apply(projection, changes, checkpoint)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_min_version_reads_your_writes(make_api: AppFactory) -> None:
    async with make_api(overrides={AccountReadModel: _SlowReadModel(0.3)}) as api:
        opened = await api.open(deposit="10.00")
        account = opened["id"]
        # the projection is behind: a plain read does not see the account yet
        problem(await api.account(account), 404, "account-not-found")
        view = await api.account(account, min_version=opened["version"])
        assert view.status_code == 200
        assert view.json()["balance"] == "10.00"

        deposit = (await api.move("deposits", account, "5.00")).json()
        stale = (await api.account(account)).json()
        assert stale["version"] < deposit["version"]
        fresh = (await api.account(account, min_version=deposit["version"])).json()
        assert (fresh["balance"], fresh["version"]) == ("15.00", deposit["version"])
        page = await api.call(
            "GET", f"/accounts/{account}/transactions?min_version={deposit['version']}"
        )
        assert [item["amount"] for item in page.json()["items"]] == ["10.00", "5.00"]
