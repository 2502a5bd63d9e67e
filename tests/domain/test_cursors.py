"""Page cursors: opaque to clients, and anything this API did not issue is refused by name."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.accounts.errors import InvalidRequestError
from handlers.accounts.query_handlers import decode_version_cursor, encode_cursor
from tests.support import HOST_INDEPENDENT


@HOST_INDEPENDENT
@given(st.integers(min_value=0, max_value=10**18 - 1))
def test_a_version_cursor_round_trips(version: int) -> None:
    assert decode_version_cursor(encode_cursor(str(version))) == version


def test_no_cursor_is_the_start() -> None:
    assert decode_version_cursor(None) == 0


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "OTk5OTk5OTk5OTk5OTk5OTk5OTk",  # 99999999999999999999: over 2^63
        _b64("9" * 19),
        _b64("9" * 5000),  # more digits than int() reads from a str
        _b64("-1"),
        _b64("+1"),
        _b64(" 1"),
        _b64("1_0"),
        _b64("1e3"),
        _b64("\u0661"),  # an Arabic-Indic one
        _b64(""),
        "bm9wZQ",  # "nope"
        "_w",  # not UTF-8
        "a",  # not base64
    ],
)
def test_anything_else_is_not_a_cursor(cursor: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        decode_version_cursor(cursor)
    assert refused.value.field == "cursor"
