"""The ``balance`` command line: token, config, projections rebuild, plugin commands."""

from __future__ import annotations

import asyncio
import os
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click
import jwt
import pytest
from click.testing import CliRunner

from api.cli import build_cli, cli
from core.config import Settings, advertised_url, load_settings
from core.hookspecs import hookimpl
from handlers.accounts.messages import Deposit, GetAccount, OpenAccount
from handlers.accounts.readmodel import AccountReadModel
from plugins.jwt.authenticator import JwtAuthenticator
from plugins.jwt.cli import parse_ttl
from plugins.jwt.config import SECRET_FILE, JwtConfig, local_secret
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
    """``balance <args>``, with the commands the enabled plugins add (``token`` is the jwt
    plugin's)."""
    return CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)


def test_token_has_the_default_scopes_and_verifies(environment: Path) -> None:
    result = run("token", "--sub", "alice")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
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
    claims = jwt.decode(result.stdout.strip(), local_secret(environment), algorithms=["HS256"])
    assert (claims["scope"], claims["roles"]) == ("accounts:read", ["teller"])
    assert claims["exp"] - claims["iat"] == 900
    spaced = run("token", "--sub", "t1", "--scope", "a b", "--scope", "c")
    spaced_claims = jwt.decode(spaced.stdout.strip(), local_secret(environment), ["HS256"])
    assert spaced_claims["scope"] == "a b c"


def test_token_with_the_configured_secret_issuer_and_audience(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BALANCE_JWT_SECRET", "x" * 32)
    monkeypatch.setenv("BALANCE_JWT_ISSUER", "https://issuer.test")
    monkeypatch.setenv("BALANCE_JWT_AUDIENCE", "balance")
    token = run("token", "--sub", "alice").stdout.strip()
    claims = jwt.decode(token, "x" * 32, ["HS256"], audience="balance")
    assert claims["iss"] == "https://issuer.test"


def test_token_says_on_stderr_which_secret_it_signed_with(environment: Path) -> None:
    secret_file = environment / SECRET_FILE
    first = run("token", "--sub", "alice")
    assert first.exit_code == 0, first.output
    assert len(first.stdout.splitlines()) == 1  # $(balance token ...) captures the token alone
    jwt.decode(first.stdout.strip(), local_secret(environment), algorithms=["HS256"])
    assert f"signed with the secret in {secret_file} (created now" in first.stderr
    assert "BALANCE_DATA_DIR" in first.stderr
    again = run("token", "--sub", "alice")
    assert again.stderr == f"balance token: signed with the secret in {secret_file}\n"


def test_token_with_the_configured_secret_says_so_and_creates_no_file(
    monkeypatch: pytest.MonkeyPatch, environment: Path
) -> None:
    monkeypatch.setenv("BALANCE_JWT_SECRET", "x" * 32)
    result = run("token", "--sub", "alice")
    assert result.stderr == "balance token: signed with BALANCE_JWT_SECRET\n"
    assert not (environment / SECRET_FILE).exists()


def test_version_comes_from_the_installed_package() -> None:
    expected = f"balance, version {version('account-balance')}\n"
    assert run("--version").output == expected
    assert CliRunner().invoke(build_cli(), ["--version"]).output == expected


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


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"BALANCE_EVENT_STORE": "kafk"},
            "unknown event_store backend 'kafk' (BALANCE_EVENT_STORE); "
            "available: kafka, memory, sqlite",
        ),
        (
            {"BALANCE_READ_MODEL": "mongodb"},
            "unknown read_model backend 'mongodb' (BALANCE_READ_MODEL); "
            "available: memory, mongo, sqlite",
        ),
        ({"BALANCE_EVENT_STORE": "kafka"}, "missing required setting BALANCE_KAFKA_BOOTSTRAP"),
        (
            {"BALANCE_READ_MODEL": "mongo", "BALANCE_MONGO_URL": "http://db"},
            "BALANCE_MONGO_URL must be a mongodb:// or mongodb+srv:// URL",
        ),
        ({"BALANCE_JWT_SECRET": "short"}, "BALANCE_JWT_SECRET must be at least 32 bytes"),
        ({"BALANCE_PORT": "http"}, "BALANCE_PORT must be a whole number"),
        ({"BALANCE_WORKERS": "two"}, "BALANCE_WORKERS must be a whole number"),
        ({"BALANCE_MAX_BODY_BYTES": "64k"}, "BALANCE_MAX_BODY_BYTES must be a whole number"),
        ({"BALANCE_LOG_LEVEL": "loud"}, "BALANCE_LOG_LEVEL: 'LOUD' is not a level"),
        ({"BALANCE_SWITCH_INTERVAL": "fast"}, "BALANCE_SWITCH_INTERVAL must be a number"),
        ({"BALANCE_GC_THRESHOLD": "1,2"}, "BALANCE_GC_THRESHOLD must be three positive"),
        ({"BALANCE_SNAPSHOT_EVERY": "often"}, "BALANCE_SNAPSHOT_EVERY must be a whole number"),
        ({"BALANCE_READ_WAIT_SECONDS": "soon"}, "BALANCE_READ_WAIT_SECONDS must be a number"),
        ({"BALANCE_ADVERTISED_URL": "10.0.0.5:8000"}, "BALANCE_ADVERTISED_URL must be an http"),
        ({"BALANCE_FORWARD_MAX_HOPS": "-1"}, "BALANCE_FORWARD_MAX_HOPS must not be negative"),
        ({"BALANCE_FORWARD_TIMEOUT": "0"}, "BALANCE_FORWARD_TIMEOUT must be a positive number"),
    ],
)
def test_config_checks_what_serve_checks(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    def listen(*args: object, **kwargs: object) -> None:
        raise AssertionError("serve accepted the settings and started the server")

    monkeypatch.setattr("uvicorn.run", listen)
    result = run("config")
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output
    # serve refuses the same settings with the same message, before it listens
    served = run("serve")
    assert served.exit_code == 1, served.output
    assert message in served.stderr


def test_config_checks_without_opening_or_writing_anything(
    monkeypatch: pytest.MonkeyPatch, environment: Path
) -> None:
    # No broker or server at these addresses: checking them does not connect.
    monkeypatch.setenv("BALANCE_EVENT_STORE", "kafka")
    monkeypatch.setenv("BALANCE_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("BALANCE_READ_MODEL", "mongo")
    monkeypatch.setenv("BALANCE_MONGO_URL", "mongodb://127.0.0.1:9/")
    result = run("config")
    assert result.exit_code == 0, result.output
    assert "event_store = kafka" in result.stdout.splitlines()
    assert not environment.exists()  # not even the local JWT secret


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
    assert result.stdout == "rebuilt the read model from 3 events and switched to it\n"
    assert "3/3 events" in result.stderr  # the progress bar, with its total

    async def read() -> tuple[int, int]:
        async with running(settings, run_projector=False) as app:
            read_model = app.container.resolve(AccountReadModel)  # type: ignore[type-abstract]
            view = await read_model.get_account(account_id)
            assert view is not None
            via_query = await app.mediator.send(GetAccount(account_id, ALICE))
            return view.balance, via_query.version

    assert asyncio.run(read()) == (1500, 3)


class _BuiltApplication:
    """What the read-only commands need of the application: a projector that has nothing to
    do."""

    def __init__(self) -> None:
        self.projector = self
        self.applied = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def rebuild(self, advanced: Any = None) -> int:
        return 0

    async def run(self, stop: asyncio.Event) -> None:
        pass


@pytest.mark.parametrize("command", [["projector"], ["projections", "rebuild"]])
def test_the_read_only_commands_build_an_application_that_writes_no_event(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """Both commands reach the composition root with the kernel's ``writes_events`` off (a
    partitioned store then takes no partition over); ``balance projector`` through the host a
    plugin command is given."""
    built: list[Settings] = []

    def bootstrap(settings: Settings, *, run_projector: bool | None = None) -> _BuiltApplication:
        assert run_projector is False
        built.append(settings)
        return _BuiltApplication()

    monkeypatch.setattr("api.cli.bootstrap", bootstrap)
    monkeypatch.setenv("BALANCE_EVENT_STORE", "memory")
    result = run(*command)
    assert result.exit_code == 0, result.output
    assert [(s.writes_events, s.event_store) for s in built] == [(False, "memory")]


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


def test_plugin_commands_get_the_composition_root_through_the_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plugin's command builds the application through click's context object (the plugin
    imports no ``api``): ``balance projector`` reaches the composition root, which checks the
    configuration."""

    class _Hosted:
        @hookimpl
        def balance_cli_commands(self) -> list[click.Command]:
            @click.command("hosted")
            @click.pass_obj
            def hosted(host: Any) -> None:
                application = host.bootstrap(load_settings(), run_projector=False)
                click.echo(f"{type(application).__name__} {application.run_projector}")

            return [hosted]

    group = build_cli(extra_plugins={"hosted": _Hosted()})
    assert CliRunner().invoke(group, ["hosted"]).output == "Application False\n"

    monkeypatch.setenv("BALANCE_EVENT_STORE", "nowhere")
    result = CliRunner().invoke(build_cli(), ["projector"])
    assert result.exit_code == 1
    assert "unknown event_store backend 'nowhere'" in result.output


def test_serve_help() -> None:
    result = run("serve", "--help")
    assert result.exit_code == 0
    assert "--workers" in result.output


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, "http://10.1.2.3:9123"),
        ({"BALANCE_ADVERTISED_URL": "http://api-2.internal:8000"}, "http://api-2.internal:8000"),
    ],
)
def test_serve_advertises_the_address_it_listens_on(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    served: list[Any] = []

    def listen(app: Any, options: dict[str, Any]) -> None:
        served.append(app)

    monkeypatch.setattr("api.cli._serve_one", listen)
    result = run("serve", "--host", "10.1.2.3", "--port", "9123")
    assert result.exit_code == 0, result.output
    application = served[0].dependencies["application"].dependency()
    assert advertised_url(application.settings) == expected
