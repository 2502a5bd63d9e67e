"""The JWT authenticator's own claim checks: NumericDates are JSON numbers, and any number is
handled without an error of its own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from core.auth import AuthenticationError
from plugins.jwt.authenticator import JwtAuthenticator, check_numeric_dates
from plugins.jwt.config import JwtConfig
from plugins.jwt.tokens import mint_token
from tests.support import settings_for


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["1900000000", "1.5", "", True, False, None, [1], {"s": 1}])
def test_a_numeric_date_that_is_not_a_number_is_refused(claim: str, value: Any) -> None:
    with pytest.raises(AuthenticationError) as refused:
        check_numeric_dates({claim: value})
    assert repr(claim) in refused.value.reason


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_numeric_date_is_finite(value: float) -> None:
    with pytest.raises(AuthenticationError):
        check_numeric_dates({"exp": value})


def test_numbers_and_absent_claims_pass() -> None:
    check_numeric_dates({"exp": 1_900_000_000, "nbf": 1_700_000_000.5, "iat": 10**400})
    check_numeric_dates({"sub": "alice"})


@pytest.fixture
def authenticator_and_settings(tmp_path: Path) -> tuple[JwtAuthenticator, Any]:
    settings = settings_for("memory", tmp_path, authenticator="jwt")
    return JwtAuthenticator(JwtConfig.from_settings(settings)), settings


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
async def test_a_signed_token_with_a_string_date_is_refused(
    authenticator_and_settings: tuple[JwtAuthenticator, Any], claim: str
) -> None:
    authenticator, settings = authenticator_and_settings
    now = int(time.time())
    dates = {"exp": now + 3600, "nbf": now - 60, "iat": now - 60}
    token = mint_token(settings, "alice", **{**dates, claim: str(dates[claim])})
    with pytest.raises(AuthenticationError, match=claim):
        await authenticator.authenticate(token)


async def test_an_expiry_too_large_for_a_float_is_cached_without_error(
    authenticator_and_settings: tuple[JwtAuthenticator, Any],
) -> None:
    authenticator, settings = authenticator_and_settings
    token = mint_token(settings, "alice", exp=10**400)
    first = await authenticator.authenticate(token)
    assert first.subject == "alice"
    assert await authenticator.authenticate(token) is first  # from the cache
