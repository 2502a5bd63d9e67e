"""Idempotency-Key (a replay returns the first response; the key with another body is refused)
and If-Match (a stale version is 412 and writes nothing)."""

from __future__ import annotations

import asyncio

from handlers.accounts.account import COMMAND_MEMORY
from tests.e2e.conftest import Api, AppFactory, problem


async def test_a_repeated_deposit_returns_the_first_response_and_moves_money_once(
    api: Api,
) -> None:
    account = (await api.open())["id"]
    key = {"Idempotency-Key": "dep-1"}
    first = await api.move("deposits", account, "25.00", headers=key)
    second = await api.move("deposits", account, "25.00", headers=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["etag"] == first.headers["etag"] == '"2"'
    view = (await api.account(account, min_version=2)).json()
    assert (view["balance"], view["version"]) == ("25.00", 2)
    # another key is another deposit
    third = await api.move("deposits", account, "25.00", headers={"Idempotency-Key": "dep-2"})
    assert third.json()["balance_after"] == "50.00"


async def test_the_same_key_with_another_body_is_422(api: Api) -> None:
    account = (await api.open())["id"]
    key = {"Idempotency-Key": "k-1"}
    assert (await api.move("deposits", account, "25.00", headers=key)).status_code == 201
    problem(
        await api.move("deposits", account, "26.00", headers=key), 422, "idempotency-key-reused"
    )
    problem(
        await api.move("withdrawals", account, "25.00", headers=key), 422, "idempotency-key-reused"
    )
    view = (await api.account(account, min_version=2)).json()
    assert view["balance"] == "25.00"


async def test_a_repeated_open_returns_the_same_account(api: Api) -> None:
    key = {"Idempotency-Key": "open-1"}
    body = {"currency": "EUR", "initial_deposit": "5.00"}
    first = await api.call("POST", "/accounts", json=body, headers=key)
    second = await api.call("POST", "/accounts", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    other = await api.call("POST", "/accounts", json={"currency": "USD"}, headers=key)
    problem(other, 422, "idempotency-key-reused")
    page = (await api.call("GET", "/accounts")).json()
    assert len(page["items"]) <= 1


async def test_a_repeated_transfer_moves_money_once(api: Api) -> None:
    a = (await api.open(deposit="100.00"))["id"]
    b = (await api.open("bob"))["id"]
    body = {"source": a, "destination": b, "amount": "30.00"}
    key = {"Idempotency-Key": "tr-1"}
    first = await api.call("POST", "/transfers", json=body, headers=key)
    second = await api.call("POST", "/transfers", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert (await api.account(a, min_version=3)).json()["balance"] == "70.00"
    changed = {**body, "amount": "31.00"}
    response = await api.call("POST", "/transfers", json=changed, headers=key)
    problem(response, 422, "idempotency-key-reused")


async def test_a_malformed_idempotency_key_is_400(api: Api) -> None:
    account = (await api.open())["id"]
    for bad in ("", "x" * 256, "has space"):
        response = await api.move("deposits", account, "1.00", headers={"Idempotency-Key": bad})
        assert problem(response, 400, "invalid-header")["field"] == "Idempotency-Key"


async def test_if_match_applies_only_at_that_version(api: Api) -> None:
    opened = await api.open(deposit="10.00")
    account = opened["id"]
    assert opened["version"] == 2
    fresh = await api.move("deposits", account, "1.00", headers={"If-Match": '"2"'})
    assert fresh.status_code == 201
    assert fresh.headers["etag"] == '"3"'
    stale = await api.move("withdrawals", account, "1.00", headers={"If-Match": '"2"'})
    body = problem(stale, 412, "precondition-failed")
    assert body["current_version"] == 3
    weak = await api.move("withdrawals", account, "1.00", headers={"If-Match": 'W/"3"'})
    assert weak.status_code == 201
    anything = await api.move("deposits", account, "1.00", headers={"If-Match": "*"})
    assert anything.status_code == 201
    view = (await api.account(account, min_version=5)).json()
    assert (view["balance"], view["version"]) == ("11.00", 5)


async def test_if_match_on_close(api: Api) -> None:
    account = (await api.open())["id"]
    stale = await api.call("DELETE", f"/accounts/{account}", headers={"If-Match": '"7"'})
    problem(stale, 412, "precondition-failed")
    current = await api.call("DELETE", f"/accounts/{account}", headers={"If-Match": '"1"'})
    assert current.status_code == 204


async def test_a_malformed_if_match_is_400(api: Api) -> None:
    account = (await api.open())["id"]
    for bad in ("3", '"three"', '"1", "2"'):
        response = await api.move("deposits", account, "1.00", headers={"If-Match": bad})
        assert problem(response, 400, "invalid-header")["field"] == "If-Match"


async def test_the_get_etag_feeds_if_match(api: Api) -> None:
    account = (await api.open(deposit="3.00"))["id"]
    etag = (await api.account(account, min_version=2)).headers["etag"]
    response = await api.move("withdrawals", account, "3.00", headers={"If-Match": etag})
    assert response.status_code == 201


async def test_a_late_retry_of_an_open_replays_it_on_the_embedded_default(
    make_api: AppFactory,
) -> None:
    """The open's key has left the account's memory of recent keys: the retry still replays
    the first answer (201, version 2), and another body is 422; the account is never reopened."""
    async with make_api(backend="sqlite") as api:
        key = {"Idempotency-Key": "K"}
        body = {"currency": "EUR", "initial_deposit": "100.00"}
        first = await api.call("POST", "/accounts", json=body, headers=key)
        assert first.status_code == 201
        account = first.json()["id"]
        for start in range(0, COMMAND_MEMORY + 1, 50):
            answers = await asyncio.gather(
                *(
                    api.move("deposits", account, "1.00", headers={"Idempotency-Key": f"d-{n}"})
                    for n in range(start, min(start + 50, COMMAND_MEMORY + 1))
                )
            )
            assert {answer.status_code for answer in answers} == {201}
        version = 2 + COMMAND_MEMORY + 1

        again = await api.call("POST", "/accounts", json=body, headers=key)
        assert again.status_code == 201
        assert again.json() == first.json()
        assert again.json()["version"] == 2
        problem(
            await api.call("POST", "/accounts", json={"currency": "JPY"}, headers=key),
            422,
            "idempotency-key-reused",
        )
        view = (await api.account(account, min_version=version)).json()
        assert (view["version"], view["balance"], view["currency"]) == (version, "1101.00", "EUR")
