"""``parse_amount``: the one accepted shape of an amount, checked before any arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.accounts.errors import InvalidAmountError
from handlers.accounts.money import MAX_MINOR_UNITS, format_amount, parse_amount
from tests.support import HOST_INDEPENDENT


@pytest.mark.parametrize(
    ("text", "code", "minor"),
    [
        ("500.00", "EUR", 50000),
        ("500", "EUR", 50000),
        ("0.5", "EUR", 50),
        ("007.50", "EUR", 750),
        ("500", "JPY", 500),
        ("1.234", "KWD", 1234),
        ("0.0001", "CLF", 1),
        ("10000000000000.00", "EUR", MAX_MINOR_UNITS),
        ("1000000000000000", "JPY", MAX_MINOR_UNITS),
    ],
)
def test_plain_decimal_text_is_parsed(text: str, code: str, minor: int) -> None:
    assert parse_amount(text, code) == minor


@pytest.mark.parametrize(
    "text",
    [
        "1e7",
        "1E+2",
        "1e999999999",
        "1e1000000",
        "1_000",
        "+5",
        "\uff11\uff10",  # fullwidth digits
        "\u0661\u0660",  # Arabic-Indic digits
        " 5",
        "5 ",
        "5\n",
        "5.",
        ".5",
        "5,00",
        "0x10",
        "NaN",
        "Infinity",
        "",
        "-",
        "1.2.3",
    ],
)
def test_any_other_shape_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidAmountError) as refused:
        parse_amount(text, "EUR", field="initial_deposit")
    assert refused.value.field == "initial_deposit"
    assert "is not a decimal amount" in refused.value.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "greater than zero"),
        ("000.00", "greater than zero"),
        ("-0", "greater than zero"),
        ("-5.00", "greater than zero"),
        ("-" + "9" * 5000, "greater than zero"),
        ("10.001", "at most 2 decimal places"),
        ("0." + "0" * 5000 + "1", "at most 2 decimal places"),
        ("10000000000000.01", "over the maximum"),
        ("9" * 17, "over the maximum"),
        # more digits than int() takes from a str: refused by their count, never converted
        ("9" * 60_000, "over the maximum"),
    ],
)
def test_rules_on_well_shaped_amounts(text: str, reason: str) -> None:
    with pytest.raises(InvalidAmountError) as refused:
        parse_amount(text, "EUR")
    assert reason in refused.value.reason


def test_leading_zeros_do_not_count_towards_the_maximum() -> None:
    assert parse_amount("0" * 60_000 + "1.00", "EUR") == 100


def test_a_long_text_is_cut_short_in_the_message() -> None:
    with pytest.raises(InvalidAmountError) as refused:
        parse_amount("x" * 60_000, "EUR")
    assert len(str(refused.value)) < 200


@HOST_INDEPENDENT
@given(st.integers(min_value=1, max_value=MAX_MINOR_UNITS), st.sampled_from(["EUR", "JPY", "KWD"]))
def test_format_and_parse_round_trip(minor: int, code: str) -> None:
    assert parse_amount(format_amount(minor, code), code) == minor
