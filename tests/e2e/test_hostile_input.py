"""Inputs built to break the parsers: each is a 4xx problem answered at once, and nothing is
written. Amounts with huge exponents, lenient number forms, deep JSON, empty bodies, cursors and
query integers out of range, instants at the edge of the calendar, token dates as strings."""

from __future__ import annotations

import pytest

from core.ports import EventStore
from tests.e2e.conftest import Api, problem

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
