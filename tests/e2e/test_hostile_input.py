"""Inputs built to break the parsers: each is a 4xx problem answered at once, and nothing is
written. Amounts with huge exponents, lenient number forms, deep JSON, empty bodies, cursors and
query integers out of range, instants at the edge of the calendar, token dates as strings."""

from __future__ import annotations

import time
from typing import Any

import pytest

from core.ports import EventStore
from plugins.jwt.tokens import mint_token
from tests.e2e.conftest import Api, AppFactory, problem

JSON = {"content-type": "application/json"}

# Exponents (some written out would be gigabytes of digits), underscores, signs, other scripts'
# digits, spaces.
LENIENT_AMOUNTS = [
    "1e1000000",
    "1E+999999",
    "1e999999999",
    "1e7",
    "1_000",
    "+5",
    "\uff11\uff10",  # fullwidth digits
    "\u0661\u0660",  # Arabic-Indic digits
    " 5",
    "5.",
]
HUGE_NUMBERS = [b"1e1000000", b"1E+999999", b"1e999999999", b"9" * 4000]


async def _version(api: Api, account: str) -> int:
    return await api.application.container.resolve(EventStore).stream_version(f"account-{account}")


@pytest.mark.parametrize("amount", LENIENT_AMOUNTS)
async def test_amounts_other_than_plain_decimal_text_are_refused(api: Api, amount: str) -> None:
    account = (await api.open(deposit="100.00"))["id"]
    other = (await api.open("bob"))["id"]
    deposit = await api.move("deposits", account, amount)
    assert problem(deposit, 422, "invalid-amount")["field"] == "amount"
    withdrawal = await api.move("withdrawals", account, amount)
    assert problem(withdrawal, 422, "invalid-amount")["field"] == "amount"
    body = {"source": account, "destination": other, "amount": amount}
    transfer = await api.call("POST", "/transfers", json=body)
    assert problem(transfer, 422, "invalid-amount")["field"] == "amount"
    opening = await api.call(
        "POST", "/accounts", json={"currency": "EUR", "initial_deposit": amount}
    )
    assert problem(opening, 422, "invalid-amount")["field"] == "initial_deposit"

    assert (await _version(api, account), await _version(api, other)) == (2, 1)
    listed = (await api.call("GET", "/accounts")).json()["items"]
    assert [item["id"] for item in listed] == [account]
    assert listed[0]["balance"] == "100.00"


@pytest.mark.parametrize("number", HUGE_NUMBERS)
async def test_json_numbers_with_huge_exponents_are_refused(api: Api, number: bytes) -> None:
    account = (await api.open(deposit="100.00"))["id"]
    other = (await api.open("bob"))["id"]
    bodies: list[tuple[str, bytes, str]] = [
        (f"/accounts/{account}/deposits", b'{"amount": ' + number + b"}", "amount"),
        (
            "/transfers",
            b'{"source": "%s", "destination": "%s", "amount": %s}'
            % (account.encode(), other.encode(), number),
            "amount",
        ),
        (
            "/accounts",
            b'{"currency": "EUR", "initial_deposit": ' + number + b"}",
            "initial_deposit",
        ),
    ]
    for path, content, field in bodies:
        response = await api.call("POST", path, content=content, headers=JSON)
        assert problem(response, 422, "validation-error")["field"] == field
    assert (await _version(api, account), await _version(api, other)) == (2, 1)


@pytest.mark.parametrize("authenticated", [True, False])
async def test_deeply_nested_json_is_400_before_authentication(
    api: Api, authenticated: bool
) -> None:
    account = (await api.open(deposit="100.00"))["id"]
    headers = {**JSON, **(api.auth("alice") if authenticated else {})}
    for body in (b"[" * 1000 + b"]" * 1000, b'{"amount": ' + b"[" * 10_000 + b"}"):
        response = await api.client.post(
            f"/accounts/{account}/deposits", content=body, headers=headers
        )
        assert "nested at most 32 levels" in problem(response, 400, "malformed-json")["detail"]
    assert await _version(api, account) == 2


async def test_nesting_up_to_the_limit_reaches_validation(api: Api) -> None:
    account = (await api.open())["id"]
    path = f"/accounts/{account}/deposits"
    within = b'{"amount": ' + b"[" * 31 + b"]" * 31 + b"}"
    problem(await api.call("POST", path, content=within, headers=JSON), 422, "validation-error")
    beyond = b'{"amount": ' + b"[" * 32 + b"]" * 32 + b"}"
    problem(await api.call("POST", path, content=beyond, headers=JSON), 400, "malformed-json")


async def test_brackets_inside_a_string_are_not_nesting(api: Api) -> None:
    account = (await api.open())["id"]
    description = "[" * 200 + '"{' * 100
    deposit = await api.call(
        "POST",
        f"/accounts/{account}/deposits",
        json={"amount": "1.00", "description": description},
    )
    assert deposit.status_code == 201, deposit.text
    assert deposit.json()["description"] == description


@pytest.mark.parametrize("authenticated", [True, False])
async def test_an_empty_json_body_is_400_malformed_json(api: Api, authenticated: bool) -> None:
    account = (await api.open())["id"]
    other = (await api.open("bob"))["id"]
    headers = {**JSON, **(api.auth("alice") if authenticated else {})}
    for path in (f"/accounts/{account}/deposits", "/transfers", "/accounts"):
        response = await api.client.post(path, content=b"", headers=headers)
        assert problem(response, 400, "malformed-json")["detail"] == (
            "the body is empty; send a JSON document"
        )
    text = await api.client.post(
        "/transfers", content=b"", headers={**headers, "content-type": "text/plain"}
    )
    problem(text, 415, "unsupported-media-type")
    assert (await _version(api, account), await _version(api, other)) == (1, 1)


@pytest.mark.parametrize("value", ["1e3", "1E0", "5.0", "+1", "1_0", " 1", "9" * 19, "9" * 5000])
async def test_integer_query_parameters_are_plain_digits(api: Api, value: str) -> None:
    account = (await api.open())["id"]
    transfer_path = "/transfers/whatever"
    for path, name in (
        (f"/accounts/{account}", "min_version"),
        (f"/accounts/{account}/transactions", "min_version"),
        (f"/accounts/{account}/transactions", "limit"),
        ("/accounts", "limit"),
        (transfer_path, "min_version"),
    ):
        response = await api.call("GET", path, params={name: value})
        body = problem(response, 422, "validation-error")
        assert body["field"] == name
        assert body["errors"][0]["source"] == "query"


async def test_integer_query_parameters_in_bounds_still_work(api: Api) -> None:
    account = (await api.open(deposit="1.00"))["id"]
    response = await api.call("GET", f"/accounts/{account}?min_version=002")
    assert response.status_code == 200, response.text
    page = await api.call("GET", f"/accounts/{account}/transactions?limit=200&min_version=2")
    assert len(page.json()["items"]) == 1


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
async def test_a_cursor_out_of_range_is_not_a_cursor(make_api: AppFactory, backend: str) -> None:
    async with make_api(backend) as api:
        account = (await api.open(deposit="1.00"))["id"]
        path = f"/accounts/{account}/transactions?min_version=2&cursor="
        for cursor in ("OTk5OTk5OTk5OTk5OTk5OTk5OTk", "LTE", "OS45OTk"):  # 9...9 (20), -1, 9.999
            body = problem(await api.call("GET", path + cursor), 422, "invalid-request")
            assert body["field"] == "cursor"
        # the largest cursor the API reads is past every version: an empty last page
        last = await api.call("GET", path + "OTk5OTk5OTk5OTk5OTk5OTk5")  # 18 nines
        assert last.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_instants_beyond_the_calendar_in_utc_are_refused(api: Api, instant: str) -> None:
    account = (await api.open(deposit="1.00"))["id"]
    for path, name in (
        (f"/accounts/{account}/balance", "at"),
        (f"/accounts/{account}/transactions", "from"),
        (f"/accounts/{account}/transactions", "to"),
    ):
        response = await api.call("GET", path, params={name: instant})
        body = problem(response, 422, "invalid-request")
        assert body["field"] == name
        assert "outside the years 0001 to 9999" in body["detail"]


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
async def test_instants_at_the_edges_of_the_calendar_still_work(
    make_api: AppFactory, backend: str
) -> None:
    async with make_api(backend) as api:
        account = (await api.open(deposit="1.00"))["id"]
        early = {"at": "0001-01-01T00:00:00Z"}
        before = (await api.call("GET", f"/accounts/{account}/balance", params=early)).json()
        assert (before["balance"], before["version"]) == ("0.00", 0)
        late = {"at": "9999-12-31T23:59:59.999999Z"}
        after = (await api.call("GET", f"/accounts/{account}/balance", params=late)).json()
        assert (after["balance"], after["version"]) == ("1.00", 2)
        window = {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59.999999Z"}
        path = f"/accounts/{account}/transactions?min_version=2"
        statement = await api.call("GET", path, params=window)
        assert [item["amount"] for item in statement.json()["items"]] == ["1.00"]


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "written", [pytest.param(str, id="string"), pytest.param(lambda _: True, id="boolean")]
)
async def test_token_dates_must_be_json_numbers(api: Api, claim: str, written: Any) -> None:
    account = (await api.open())["id"]
    now = int(time.time())
    dates = {"exp": now + 3600, "nbf": now - 60, "iat": now - 60}
    token = mint_token(api.settings, "alice", **{**dates, claim: written(dates[claim])})
    response = await api.client.get(
        f"/accounts/{account}", headers={"Authorization": f"Bearer {token}"}
    )
    body = problem(response, 401, "invalid-token")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    if written is str:
        assert body["detail"] == f"the {claim!r} claim must be a number of seconds"


async def test_a_token_expiring_beyond_any_float_is_accepted(api: Api) -> None:
    account = (await api.open())["id"]
    token = mint_token(api.settings, "alice", exp=10**400)
    for _ in range(2):  # verified, then from the cache
        response = await api.client.get(
            f"/accounts/{account}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("length", ["1_7", "+17", " 17", "17.0", "1e2", "9" * 19])
async def test_content_length_is_plain_digits(api: Api, length: str) -> None:
    account = (await api.open())["id"]
    headers = {**api.auth("alice"), **JSON, "content-length": length}
    response = await api.client.post(
        f"/accounts/{account}/deposits", content=b'{"amount":"1.00"}', headers=headers
    )
    assert problem(response, 400, "invalid-header")["field"] == "Content-Length"
    assert await _version(api, account) == 1
