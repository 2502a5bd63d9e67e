"""Integer query parameters (``core.http.query``): plain ASCII digits within the bounds, nothing
else."""

from __future__ import annotations

import pytest

from core.http.query import QueryInt, decode_query_int
from handlers.accounts.query_handlers import MAX_PAGE
from handlers.accounts.web.params import PageSize, Version


@pytest.mark.parametrize(
    ("text", "number"), [("0", 0), ("7", 7), ("007", 7), ("9" * 18, 10**18 - 1)]
)
def test_plain_digits_are_read(text: str, number: int) -> None:
    value = decode_query_int(Version, text)
    assert (value, type(value)) == (number, Version)


@pytest.mark.parametrize(
    "text",
    [
        "1e3",
        "1E3",
        "5.0",
        "1.5e1",
        "-1",
        "+1",
        "1_000",
        " 1",
        "1 ",
        "",
        "0x10",
        "\uff11",  # fullwidth one
        "\u0661",  # Arabic-Indic one
        "9" * 19,
        "9" * 5000,
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="plain digits"):
        decode_query_int(Version, text)


def test_the_bounds_are_the_class_s() -> None:
    assert decode_query_int(PageSize, "1") == 1
    assert decode_query_int(PageSize, str(MAX_PAGE)) == MAX_PAGE
    for text in ("0", str(MAX_PAGE + 1)):
        with pytest.raises(ValueError, match=f"from 1 to {MAX_PAGE}"):
            decode_query_int(PageSize, text)


def test_a_default_int_is_checked_too() -> None:
    assert decode_query_int(PageSize, 50) == 50
    with pytest.raises(ValueError, match="from 1"):
        decode_query_int(PageSize, 0)
    with pytest.raises(ValueError, match="plain digits"):
        decode_query_int(PageSize, True)


def test_the_schema_states_the_bounds() -> None:
    assert PageSize.schema() == {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}
    assert QueryInt.schema()["maximum"] < 2**63
