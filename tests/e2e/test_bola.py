"""Broken object-level authorization, the first of the OWASP API risks: a customer who names
another customer's account or transfer gets 404 on every endpoint, exactly as if it did not
exist, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import TELLER, Api, problem

# (method, path template, body); {a} is alice's account, {t} her transfer.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/accounts/{a}", None),
    ("GET", "/accounts/{a}?min_version=1", None),
    ("DELETE", "/accounts/{a}", None),
    ("POST", "/accounts/{a}/deposits", {"amount": "1.00"}),
    ("POST", "/accounts/{a}/withdrawals", {"amount": "1.00"}),
    ("GET", "/accounts/{a}/transactions", None),
    ("GET", "/accounts/{a}/transactions?from=2020-01-01T00:00:00Z&limit=5", None),
    ("GET", "/accounts/{a}/balance", None),
    ("GET", "/accounts/{a}/balance?at=2030-01-01T00:00:00Z", None),
    ("GET", "/transfers/{t}", None),
]


@pytest.fixture
async def alices(api: Api) -> dict[str, str]:
    a = (await api.open("alice", deposit="100.00"))["id"]
    a2 = (await api.open("alice"))["id"]
    response = await api.call(
        "POST", "/transfers", "alice", json={"source": a, "destination": a2, "amount": "10.00"}
    )
    assert response.status_code == 201, response.text
    # wait until the read model has everything, so a 404 cannot be a projection delay
    await api.call("GET", f"/transfers/{response.json()['id']}?min_version=2", "alice")
    await api.account(a, min_version=3)
    return {"a": a, "a2": a2, "t": response.json()["id"]}


@pytest.mark.parametrize(("method", "template", "body"), ENDPOINTS)
async def test_bob_gets_404_on_alices_resources(
    api: Api, alices: dict[str, str], method: str, template: str, body: dict[str, Any] | None
) -> None:
    path = template.format(**alices)
    slug = "transfer-not-found" if path.startswith("/transfers") else "account-not-found"
    problem(await api.call(method, path, "bob", json=body), 404, slug)
    # alice herself is not refused, and bob's attempt changed nothing
    assert (
        await api.call("GET", path if method == "GET" else f"/accounts/{alices['a']}")
    ).is_success
    view = (await api.account(alices["a"], min_version=3)).json()
    assert (view["balance"], view["version"], view["status"]) == ("90.00", 3, "open")


async def test_a_stranger_and_a_missing_account_look_the_same(
    api: Api, alices: dict[str, str]
) -> None:
    theirs = (await api.call("GET", f"/accounts/{alices['a']}", "bob")).json()
    missing = (await api.call("GET", "/accounts/no-such-id", "bob")).json()
    assert (theirs["type"], theirs["title"], theirs["status"]) == (
        missing["type"],
        missing["title"],
        missing["status"],
    )


async def test_transfers_leave_only_the_callers_own_accounts(
    api: Api, alices: dict[str, str]
) -> None:
    bobs = (await api.open("bob", deposit="50.00"))["id"]
    stolen = await api.call(
        "POST",
        "/transfers",
        "bob",
        json={"source": alices["a"], "destination": bobs, "amount": "1"},
    )
    problem(stolen, 404, "account-not-found")
    view = (await api.account(alices["a"], min_version=3)).json()
    assert view["balance"] == "90.00"
    # paying into someone else's account is allowed
    paid = await api.call(
        "POST",
        "/transfers",
        "bob",
        json={"source": bobs, "destination": alices["a"], "amount": "5"},
    )
    assert paid.status_code == 201
    assert paid.json()["status"] == "completed"
    # a teller may move money out of anyone's account
    by_teller = await api.call(
        "POST",
        "/transfers",
        TELLER,
        json={"source": alices["a"], "destination": bobs, "amount": "1"},
    )
    assert by_teller.status_code == 201


async def test_bobs_list_never_shows_alices_accounts(api: Api, alices: dict[str, str]) -> None:
    await api.open("bob")
    for query in ("/accounts", "/accounts?owner=alice"):
        items = (await api.call("GET", query, "bob")).json()["items"]
        assert all(item["owner"] == "bob" for item in items)
        assert alices["a"] not in {item["id"] for item in items}


async def _refusals(api: Api, caller: str, source: str, destinations: list[str]) -> list[Any]:
    """What ``caller`` is told for a transfer of 1.00 from ``source`` to each destination, with
    the destination's id (which the caller sent) and the request id taken out."""
    answers = []
    for destination in destinations:
        body = {"source": source, "destination": destination, "amount": "1.00"}
        response = await api.call("POST", "/transfers", caller, json=body)
        document = response.json()
        document.pop("request_id", None)
        document["detail"] = document.get("detail", "").replace(destination, "{id}")
        answers.append((response.status_code, response.headers["content-type"], document))
    return answers


async def test_a_transfer_cannot_tell_a_strangers_account_from_a_missing_one(api: Api) -> None:
    """Whatever of alice's accounts refuses the credit (another currency, closed, at the
    maximum balance), bob is told exactly what an unknown id tells him, and nothing moves;
    before that, the rules of his own source answer alike for both."""
    dollars = (await api.open("alice", currency="USD"))["id"]
    closed = (await api.open("alice"))["id"]
    assert (await api.call("DELETE", f"/accounts/{closed}", "alice")).status_code == 204
    full = (await api.open("alice", deposit="10000000000000.00"))["id"]
    strangers = [dollars, closed, full]
    bobs = (await api.open("bob", deposit="5.00"))["id"]
    empty = (await api.open("bob"))["id"]

    missing = await _refusals(api, "bob", bobs, ["no-such-account"])
    assert missing[0][0] == 404
    assert missing[0][2]["type"] == "/problems/account-not-found"
    assert await _refusals(api, "bob", bobs, strangers) == missing * len(strangers)
    unfunded = await _refusals(api, "bob", empty, ["no-such-account"])
    assert unfunded[0][2]["type"] == "/problems/insufficient-funds"
    assert await _refusals(api, "bob", empty, strangers) == unfunded * len(strangers)

    assert (await api.account(bobs, "bob")).json()["balance"] == "5.00"
    assert (await api.account(full, "alice")).json()["balance"] == "10000000000000.00"
    # the owner, and a teller, are told the rule
    mine = (await api.open("alice", deposit="5.00"))["id"]
    for caller in ("alice", TELLER):
        told = [answer[2]["type"] for answer in await _refusals(api, caller, mine, strangers)]
        assert told == [
            "/problems/currency-mismatch",
            "/problems/account-closed",
            "/problems/balance-limit",
        ]
