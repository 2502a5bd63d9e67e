"""The ``balance`` command line: token, config, projections rebuild, plugin commands."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import click
import jwt
import pytest
from click.testing import CliRunner

from api.cli import build_cli, cli, parse_ttl
from core.config import load_settings
from core.hookspecs import hookimpl
from handlers.accounts.readmodel import AccountReadModel
from handlers.accounts.requests import Deposit, GetAccount, OpenAccount
from plugins.jwt.authenticator import JwtAuthenticator
from plugins.jwt.config import JwtConfig, local_secret
from tests.support import ALICE, ctx, running, settings_for


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Only this test's BALANCE_* variables, and no ./balance.toml."""
    for name in list(os.environ):
        if name.startswith("BALANCE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("BALANCE_DATA_DIR", str(data_dir))
    return data_dir


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_token_has_the_default_scopes_and_verifies(environment: Path) -> None:
    result = run("token", "--sub", "alice")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    claims = jwt.decode(token, local_secret(environment), algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["scope"] == "accounts:read accounts:write"
    assert "roles" not in claims
    assert 3590 <= claims["exp"] - int(time.time()) <= 3600
    authenticator = JwtAuthenticator(JwtConfig.from_settings(load_settings()))
    principal = asyncio.run(authenticator.authenticate(token))
    assert principal.subject == "alice"
    assert principal.scopes == {"accounts:read", "accounts:write"}


def test_token_scopes_roles_and_ttl(environment: Path) -> None:
    result = run(
        "token", "--sub", "t1", "--scope", "accounts:read", "--role", "teller", "--ttl", "15m"
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), local_secret(environment), algorithms=["HS256"])
    assert (claims["scope"], claims["roles"]) == ("accounts:read", ["teller"])
    assert claims["exp"] - claims["iat"] == 900
    spaced = run("token", "--sub", "t1", "--scope", "a b", "--scope", "c")
    spaced_claims = jwt.decode(spaced.output.strip(), local_secret(environment), ["HS256"])
    assert spaced_claims["scope"] == "a b c"


def test_token_with_the_configured_secret_issuer_and_audience(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BALANCE_JWT_SECRET", "x" * 32)
    monkeypatch.setenv("BALANCE_JWT_ISSUER", "https://issuer.test")
    monkeypatch.setenv("BALANCE_JWT_AUDIENCE", "balance")
    token = run("token", "--sub", "alice").output.strip()
    claims = jwt.decode(token, "x" * 32, ["HS256"], audience="balance")
    assert claims["iss"] == "https://issuer.test"


def test_token_refuses_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("token").exit_code == 2  # --sub is required
    bad_ttl = run("token", "--sub", "a", "--ttl", "forever")
    assert bad_ttl.exit_code == 2
    assert "not a duration" in bad_ttl.output
    monkeypatch.setenv("BALANCE_JWT_SECRET", "short")
    short = run("token", "--sub", "a")
    assert short.exit_code == 1
    assert "at least 32 bytes" in short.output
    assert "Traceback" not in short.output


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)]
)
def test_parse_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text).total_seconds() == seconds


def test_config_prints_every_setting_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, environment: Path
) -> None:
    monkeypatch.setenv("BALANCE_JWT_SECRET", "super-secret-value-of-32-bytes-or-more")
    monkeypatch.setenv("BALANCE_MONGO_URL", "mongodb://app:hunter2@db:27017/balance")
    monkeypatch.setenv("BALANCE_JWT_ISSUER", "https://issuer.test")
    result = run("config")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(" = ", 1) for line in result.output.strip().splitlines())
    assert lines["event_store"] == "sqlite"
    assert lines["data_dir"] == str(environment)
    assert lines["jwt_secret"] == "********"
    assert lines["jwt_issuer"] == "https://issuer.test"
    assert lines["mongo_url"] == "mongodb://app:********@db:27017/balance"
    assert "super-secret" not in result.output
    assert "hunter2" not in result.output


def test_config_reports_a_bad_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BALANCE_CONFIG", str(tmp_path / "missing.toml"))
    result = run("config")
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_projections_rebuild_replays_every_event(environment: Path) -> None:
    settings = settings_for("sqlite", environment)

    async def write() -> str:
        async with running(settings) as app:
            account = await app.mediator.send(OpenAccount("EUR", ctx(), "10.00"))
            await app.mediator.send(Deposit(account.id, "5.00", ctx()))
            return account.id

    account_id = asyncio.run(write())
    result = run("projections", "rebuild")
    assert result.exit_code == 0, result.output
    assert "rebuilt the read model from 3 events" in result.output

    async def read() -> tuple[int, int]:
        async with running(settings, run_projector=False) as app:
            read_model = app.container.resolve(AccountReadModel)  # type: ignore[type-abstract]
            view = await read_model.get_account(account_id)
            assert view is not None
            via_query = await app.mediator.send(GetAccount(account_id, ALICE))
            return view.balance, via_query.version

    assert asyncio.run(read()) == (1500, 3)


class _CliPlugin:
    @hookimpl
    def balance_cli_commands(self) -> list[click.Command]:
        @click.command("hello")
        def hello() -> None:
            click.echo("hello from a plugin")

        return [hello]


def test_plugins_add_commands() -> None:
    group = build_cli(extra_plugins={"cli-test": _CliPlugin()})
    result = CliRunner().invoke(group, ["hello"])
    assert result.output == "hello from a plugin\n"
    assert {"serve", "token", "projections", "config", "hello"} <= set(group.commands)
    assert "hello" not in cli.commands


def test_serve_help() -> None:
    result = run("serve", "--help")
    assert result.exit_code == 0
    assert "--workers" in result.output
