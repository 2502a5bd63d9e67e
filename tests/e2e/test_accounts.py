"""Accounts over HTTP: open, read, list, deposit, withdraw, close, and the amount rules."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import TELLER, Api, problem

ACCOUNT_FIELDS = {
    "id",
    "owner",
    "currency",
    "balance",
    "status",
    "version",
    "opened_at",
    "closed_at",
}
MOVEMENT_FIELDS = {"id", "account", "kind", "amount", "balance_after", "version", "occurred_at"}


async def test_open_returns_201_location_etag_and_the_account(api: Api) -> None:
    response = await api.call("POST", "/accounts", json={"currency": "EUR"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == ACCOUNT_FIELDS
    assert response.headers["location"] == f"/accounts/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert body["owner"] == "alice"
    assert body["balance"] == "0.00"
    assert body["status"] == "open"
    assert body["closed_at"] is None
    assert body["opened_at"].endswith("Z")


async def test_open_with_initial_deposit(api: Api) -> None:
    body = await api.open(deposit="500.00")
    assert body["balance"] == "500.00"
    assert body["version"] == 2


async def test_only_a_teller_sets_the_owner(api: Api) -> None:
    ignored = await api.open("alice", owner="mallory")
    assert ignored["owner"] == "alice"
    chosen = await api.open(TELLER, owner="carol")
    assert chosen["owner"] == "carol"
    # carol sees the account a teller opened for her
    response = await api.account(chosen["id"], as_="carol", min_version=1)
    assert response.status_code == 200


async def test_get_account_has_every_field_and_the_version_as_etag(api: Api) -> None:
    opened = await api.open(deposit="12.34")
    response = await api.account(opened["id"], min_version=2)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == ACCOUNT_FIELDS
    assert body == opened
    assert response.headers["etag"] == '"2"'


async def test_unknown_account_is_404(api: Api) -> None:
    problem(await api.account("no-such-account"), 404, "account-not-found")


async def test_list_is_the_callers_accounts_paged(api: Api) -> None:
    mine = {(await api.open())["id"] for _ in range(3)}
    last = (await api.open("bob"))["id"]
    await api.account(last, as_="bob", min_version=1)  # the projection has all four
    seen: set[str] = set()
    cursor = ""
    pages = 0
    while True:
        query = f"/accounts?limit=2{'&cursor=' + cursor if cursor else ''}"
        response = await api.call("GET", query)
        assert response.status_code == 200
        page = response.json()
        seen |= {item["id"] for item in page["items"]}
        assert all(item["owner"] == "alice" for item in page["items"])
        pages += 1
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == mine
    assert pages == 2


async def test_teller_lists_everyone_and_filters_by_owner(api: Api) -> None:
    a = await api.open("alice")
    b = await api.open("bob")
    # wait for the projection of both
    await api.account(b["id"], as_="bob", min_version=1)
    everyone = (await api.call("GET", "/accounts", TELLER)).json()
    assert {a["id"], b["id"]} <= {item["id"] for item in everyone["items"]}
    only_bob = (await api.call("GET", "/accounts?owner=bob", TELLER)).json()
    assert [item["id"] for item in only_bob["items"]] == [b["id"]]
    # a customer's ?owner= is ignored: she still sees only her own
    filtered = (await api.call("GET", "/accounts?owner=bob", "alice")).json()
    assert [item["id"] for item in filtered["items"]] == [a["id"]]


async def test_bad_limit_or_cursor_is_a_client_error(api: Api) -> None:
    body = problem(await api.call("GET", "/accounts?limit=0"), 422, "validation-error")
    assert body["field"] == "limit"
    body = problem(await api.call("GET", "/accounts?limit=abc"), 422, "validation-error")
    assert body["field"] == "limit"
    assert [error["source"] for error in body["errors"]] == ["query"]
    body = problem(await api.call("GET", "/accounts?cursor=_w"), 422, "invalid-request")
    assert body["field"] == "cursor"


async def test_deposit_and_withdrawal_return_201_and_the_movement(api: Api) -> None:
    account = (await api.open())["id"]
    deposit = await api.move("deposits", account, "500.00")
    assert deposit.status_code == 201
    body = deposit.json()
    assert set(body) == MOVEMENT_FIELDS
    assert body["account"] == account
    assert body["kind"] == "deposit"
    assert (body["amount"], body["balance_after"], body["version"]) == ("500.00", "500.00", 2)
    assert deposit.headers["etag"] == '"2"'

    withdrawal = await api.call(
        "POST",
        f"/accounts/{account}/withdrawals",
        json={"amount": "120.50", "description": "rent"},
    )
    assert withdrawal.status_code == 201
    body = withdrawal.json()
    assert body["kind"] == "withdrawal"
    assert (body["amount"], body["balance_after"], body["version"]) == ("120.50", "379.50", 3)
    assert body["description"] == "rent"
    view = (await api.account(account, min_version=3)).json()
    assert view["balance"] == "379.50"


async def test_insufficient_funds_is_422_and_changes_nothing(api: Api) -> None:
    account = (await api.open(deposit="100.00"))["id"]
    body = problem(await api.move("withdrawals", account, "100.01"), 422, "insufficient-funds")
    assert body["account"] == account
    view = (await api.account(account, min_version=2)).json()
    assert (view["balance"], view["version"]) == ("100.00", 2)


async def test_an_amount_is_a_string_never_a_json_number(api: Api) -> None:
    account = (await api.open(deposit="1.00"))["id"]
    for number in (b"10.5", b"7", b"0.1000000000000000000000001", b"1e3"):
        response = await api.call(
            "POST",
            f"/accounts/{account}/deposits",
            content=b'{"amount": ' + number + b"}",
            headers={"content-type": "application/json"},
        )
        assert problem(response, 422, "validation-error")["field"] == "amount"
    view = (await api.account(account, min_version=2)).json()
    assert (view["balance"], view["version"]) == ("1.00", 2)


@pytest.mark.parametrize(
    "amount",
    ["10.555", "0", "0.00", "-5.00", -5, "abc", "NaN", "Infinity", "", "10000000000000.01", 1e-7],
)
async def test_bad_amounts_are_422_naming_the_field(api: Api, amount: object) -> None:
    account = (await api.open(deposit="1.00"))["id"]
    response = await api.move("deposits", account, amount)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == "amount"
    assert body["type"] in {"/problems/invalid-amount", "/problems/validation-error"}
    view = (await api.account(account, min_version=2)).json()
    assert view["balance"] == "1.00"


async def test_amount_of_wrong_type_is_422(api: Api) -> None:
    account = (await api.open())["id"]
    for amount in (True, None, [], {"value": 1}):
        body = problem(await api.move("deposits", account, amount), 422, "validation-error")
        assert body["field"] == "amount"


async def test_decimals_follow_the_currency(api: Api) -> None:
    yen = (await api.open(currency="JPY"))["id"]
    assert (await api.move("deposits", yen, "500")).json()["balance_after"] == "500"
    problem(await api.move("deposits", yen, "5.5"), 422, "invalid-amount")
    dinar = (await api.open(currency="KWD"))["id"]
    assert (await api.move("deposits", dinar, "1.234")).json()["amount"] == "1.234"


async def test_unknown_currency_and_bad_initial_deposit_name_their_field(api: Api) -> None:
    response = await api.call("POST", "/accounts", json={"currency": "XYZ"})
    assert problem(response, 422, "unknown-currency")["field"] == "currency"
    response = await api.call("POST", "/accounts", json={"currency": "EUR", "initial_deposit": "0"})
    assert problem(response, 422, "invalid-amount")["field"] == "initial_deposit"
    response = await api.call("POST", "/accounts", json={})
    body = problem(response, 422, "validation-error")
    assert body["field"] == "currency"
    assert [error["source"] for error in body["errors"]] == ["body"]
    response = await api.call("POST", "/accounts", json={"currency": "EUR", "balance": "1e9"})
    assert problem(response, 422, "validation-error")["field"] == "balance"


async def test_close_is_204_only_at_zero(api: Api) -> None:
    account = (await api.open(deposit="5.00"))["id"]
    body = problem(await api.call("DELETE", f"/accounts/{account}"), 409, "non-zero-balance")
    assert body["account"] == account
    assert (await api.move("withdrawals", account, "5.00")).status_code == 201
    closed = await api.call("DELETE", f"/accounts/{account}")
    assert closed.status_code == 204
    assert closed.content == b""
    view = (await api.account(account, min_version=4)).json()
    assert view["status"] == "closed"
    assert view["closed_at"] is not None


async def test_closed_account_refuses_movements_with_409(api: Api) -> None:
    account = (await api.open())["id"]
    assert (await api.call("DELETE", f"/accounts/{account}")).status_code == 204
    problem(await api.move("deposits", account, "1.00"), 409, "account-closed")
    problem(await api.move("withdrawals", account, "1.00"), 409, "account-closed")
    problem(await api.call("DELETE", f"/accounts/{account}"), 409, "account-closed")


async def test_a_teller_acts_on_any_account(api: Api) -> None:
    account = (await api.open("alice"))["id"]
    assert (await api.move("deposits", account, "9.00", as_=TELLER)).status_code == 201
    view = await api.account(account, as_=TELLER, min_version=2)
    assert view.json()["balance"] == "9.00"
    assert (await api.move("withdrawals", account, "9.00", as_=TELLER)).status_code == 201
    assert (await api.call("DELETE", f"/accounts/{account}", TELLER)).status_code == 204
