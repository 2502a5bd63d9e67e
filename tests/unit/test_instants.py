"""``parse_instant``: query instants with an offset, converted to UTC, or refused by name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from handlers.accounts.errors import InvalidRequestError
from handlers.accounts.web.params import parse_instant


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T13:00:00+01:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T13:00:00 01:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        # the very edges that UTC can still hold
        ("0001-01-01T00:00:00-14:00", datetime(1, 1, 1, 14, tzinfo=UTC)),
        ("9999-12-31T23:59:59+14:00", datetime(9999, 12, 31, 9, 59, 59, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime.max.replace(tzinfo=UTC)),
    ],
)
def test_instants_with_an_offset_are_read_as_utc(text: str, instant: datetime) -> None:
    assert parse_instant("at", text) == instant


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0001-01-01T00:00:00+14:00", "outside the years 0001 to 9999"),
        ("0001-01-01T00:00:00+00:01", "outside the years 0001 to 9999"),
        ("9999-12-31T23:59:59-14:00", "outside the years 0001 to 9999"),
        ("9999-12-31T23:59:59.999999-00:01", "outside the years 0001 to 9999"),
        ("2026-01-31T12:00:00", "needs a UTC offset"),
        ("2026-01-31T12:00:00+24:00", "not an ISO-8601 date-time"),
        ("yesterday", "not an ISO-8601 date-time"),
    ],
)
def test_other_instants_are_refused_naming_the_parameter(text: str, reason: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        parse_instant("from", text)
    assert refused.value.field == "from"
    assert reason in refused.value.reason
