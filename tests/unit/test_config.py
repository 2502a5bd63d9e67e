"""Settings: environment over TOML over defaults, typed getters, and secrets kept out of sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import (
    ConfigError,
    MissingSettingError,
    Setting,
    Settings,
    Unset,
    advertised_url,
    declare,
    default_data_dir,
    env_name,
    load_settings,
    reading_only,
)

SECRET = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def no_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # load_settings reads ./balance.toml when nothing is named: run where there is none.
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_server() -> None:
    settings = load_settings({})
    assert (settings.event_store, settings.read_model, settings.authenticator) == (
        "sqlite",
        "sqlite",
        "jwt",
    )
    assert settings.disabled_plugins == frozenset()
    assert settings.values == {}


def test_default_data_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "account-balance"
    assert load_settings({}).data_dir == tmp_path / "xdg" / "account-balance"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir() == Path.home() / ".local" / "share" / "account-balance"


def test_data_dir_is_expanded() -> None:
    settings = load_settings({"BALANCE_DATA_DIR": "~/balances"})
    assert settings.data_dir == Path.home() / "balances"


def test_environment_over_toml_over_defaults(tmp_path: Path) -> None:
    config = write(
        tmp_path / "conf.toml",
        'event_store = "memory"\nread_model = "memory"\nsnapshot_every = 7\ncache_size = 9\n',
    )
    settings = load_settings(
        {"BALANCE_CONFIG": str(config), "BALANCE_READ_MODEL": "sqlite", "BALANCE_CACHE_SIZE": "3"}
    )
    assert settings.event_store == "memory"  # TOML over the default
    assert settings.read_model == "sqlite"  # environment over TOML
    assert settings.authenticator == "jwt"  # the default
    assert settings.get_int("snapshot_every", 100) == 7
    assert settings.get_int("cache_size", 100) == 3
    assert "config" not in settings.values


def test_toml_tables_flatten_to_the_variable_names(tmp_path: Path) -> None:
    config = write(
        tmp_path / "conf.toml",
        '[kafka]\nbootstrap = "k:9092"\n[mongo.pool]\nmax-size = 5\n'
        "[sqlite]\nreaders = 2\nwal = true\n",
    )
    settings = load_settings({}, config_file=config)
    assert settings.get("kafka_bootstrap") == "k:9092"
    assert settings.get_int("mongo_pool_max_size", 0) == 5
    assert settings.get("sqlite_wal") == "true"
    # The same key from the environment wins: BALANCE_KAFKA_BOOTSTRAP is kafka_bootstrap.
    settings = load_settings({"BALANCE_KAFKA_BOOTSTRAP": "env:1"}, config_file=config)
    assert settings.get("kafka_bootstrap") == "env:1"
    assert env_name("kafka_bootstrap") == "BALANCE_KAFKA_BOOTSTRAP"


def test_balance_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    write(tmp_path / "balance.toml", 'authenticator = "fixed"\n')
    assert load_settings({}).authenticator == "fixed"


def test_named_file_replaces_the_local_one(tmp_path: Path) -> None:
    write(tmp_path / "balance.toml", 'authenticator = "local"\n')
    named = write(tmp_path / "other.toml", 'authenticator = "named"\n')
    assert load_settings({"BALANCE_CONFIG": str(named)}).authenticator == "named"


def test_missing_file_names_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_settings({"BALANCE_CONFIG": str(missing)})
    assert str(missing) in str(caught.value)


def test_invalid_toml_names_its_path_but_not_its_secrets(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.toml", f'jwt_secret = "{SECRET}"\nthis is = not toml\n')
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_settings({}, config_file=broken)
    assert str(broken) in str(caught.value)
    assert SECRET not in str(caught.value)


def test_require_names_the_variable() -> None:
    settings = load_settings({"BALANCE_MONGO_URL": ""})
    with pytest.raises(MissingSettingError, match="BALANCE_MONGO_URL") as caught:
        settings.require("mongo_url")
    assert caught.value.key == "mongo_url"
    assert isinstance(caught.value, ConfigError)
    assert load_settings({"BALANCE_MONGO_URL": "mongodb://h"}).require("mongo_url") == (
        "mongodb://h"
    )


def test_typed_getters_default_and_name_the_variable() -> None:
    settings = load_settings(
        {"BALANCE_CACHE_SIZE": "many", "BALANCE_READ_WAIT_SECONDS": "soon", "BALANCE_EMPTY": ""}
    )
    assert settings.get_int("absent", 4) == 4
    assert settings.get_int("empty", 4) == 4
    assert settings.get_float("empty", 0.5) == 0.5
    with pytest.raises(ConfigError, match="BALANCE_CACHE_SIZE must be a whole number"):
        settings.get_int("cache_size", 1)
    with pytest.raises(ConfigError, match="BALANCE_READ_WAIT_SECONDS must be a number"):
        settings.get_float("read_wait_seconds", 1.0)
    assert load_settings({"BALANCE_READ_WAIT_SECONDS": "0.25"}).get_float(
        "read_wait_seconds", 1.0
    ) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "key", ["jwt_secret", "db_password", "api_token", "jwt_private_key", "vendor_api_key"]
)
def test_masked_hides_secret_keys(key: str) -> None:
    shown = load_settings({env_name(key): SECRET, "BALANCE_CACHE_SIZE": "10"}).masked()
    assert shown[key] == "********"
    assert shown["cache_size"] == "10"
    assert SECRET not in repr(shown)


def test_masked_hides_passwords_in_urls() -> None:
    shown = load_settings(
        {
            "BALANCE_MONGO_URL": f"mongodb://app:{SECRET}@db:27017/balance",
            "BALANCE_KAFKA_BOOTSTRAP": "kafka:9092",
            "BALANCE_JWT_SECRET": "",
        }
    ).masked()
    assert shown["mongo_url"] == "mongodb://app:********@db:27017/balance"
    assert shown["kafka_bootstrap"] == "kafka:9092"
    assert shown["jwt_secret"] == ""  # an unset secret is shown as unset


def test_masked_shows_the_core_settings(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "BALANCE_EVENT_STORE": "memory",
            "BALANCE_DATA_DIR": str(tmp_path),
            "BALANCE_DISABLED_PLUGINS": "sqlite,audit",
        }
    )
    shown = settings.masked()
    assert shown["event_store"] == "memory"
    assert shown["data_dir"] == str(tmp_path)
    assert shown["disabled_plugins"] == "audit,sqlite"


@pytest.mark.parametrize(
    ("key", "value"),
    [("jwt_secret", SECRET), ("mongo_url", f"mongodb://app:{SECRET}@db/balance")],
)
def test_secrets_stay_out_of_error_messages(key: str, value: str) -> None:
    settings = load_settings({env_name(key): value})
    with pytest.raises(ConfigError) as as_int:
        settings.get_int(key, 1)
    with pytest.raises(ConfigError) as as_float:
        settings.get_float(key, 1.0)
    for error in (as_int.value, as_float.value):
        assert env_name(key) in str(error)
        assert SECRET not in str(error)


def test_disabled_plugins_from_the_environment() -> None:
    settings = load_settings({"BALANCE_DISABLED_PLUGINS": " memory, audit ,,"})
    assert settings.disabled_plugins == frozenset({"memory", "audit"})
    assert "disabled_plugins" not in settings.values


def test_disabled_plugins_from_a_toml_list(tmp_path: Path) -> None:
    config = write(tmp_path / "conf.toml", 'disabled_plugins = ["sqlite", "audit"]\n')
    settings = load_settings({}, config_file=config)
    assert settings.disabled_plugins == frozenset({"sqlite", "audit"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", True), ("on", True), ("TRUE", True), ("off", False), (" no ", False), ("0", False)],
)
def test_writes_events_is_a_switch_of_the_kernel(value: str, expected: bool) -> None:
    settings = load_settings({"BALANCE_WRITES_EVENTS": value})
    assert settings.writes_events is expected
    assert "writes_events" not in settings.values
    assert settings.masked()["writes_events"] == ("on" if expected else "off")


def test_writes_events_from_a_toml_boolean(tmp_path: Path) -> None:
    config = write(tmp_path / "conf.toml", "writes_events = false\n")
    assert load_settings({}, config_file=config).writes_events is False
    assert load_settings({}).writes_events is True


def test_writes_events_refuses_what_is_not_a_switch() -> None:
    with pytest.raises(ConfigError, match="BALANCE_WRITES_EVENTS must be on or off"):
        load_settings({"BALANCE_WRITES_EVENTS": "sometimes"})


def test_reading_only_turns_writing_off_and_keeps_the_rest(tmp_path: Path) -> None:
    settings = Settings(event_store="memory", data_dir=tmp_path, values={"kafka_topic": "t"})
    read = reading_only(settings)
    assert read.writes_events is False
    assert read == Settings(
        event_store="memory", data_dir=tmp_path, writes_events=False, values={"kafka_topic": "t"}
    )
    assert settings.writes_events is True


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.event_store = "memory"  # type: ignore[misc]


def test_declare_prefixes_the_keys_and_keeps_their_order() -> None:
    declared = declare(
        "queue",
        url=Unset("the server", "required with `queue`"),
        name="a label",
        size=("items kept", 1000),
        timeout=("seconds to wait", 2.5),
    )
    assert declared == (
        Setting("queue_url", "the server", unset="required with `queue`"),
        Setting("queue_name", "a label"),
        Setting("queue_size", "items kept", "1000"),
        Setting("queue_timeout", "seconds to wait", "2.5"),
    )


def test_declare_without_a_prefix_keeps_the_names_and_marks_server_keys() -> None:
    (host,) = declare("", server=True, host=("the interface", "127.0.0.1"))
    assert host == Setting("host", "the interface", "127.0.0.1", server=True)


def test_the_advertised_url_defaults_to_the_servers_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert advertised_url(load_settings({})) == "http://127.0.0.1:8000"
    served = load_settings({"BALANCE_HOST": "10.0.0.5", "BALANCE_PORT": "9000"})
    assert advertised_url(served) == "http://10.0.0.5:9000"
    # The command line's address wins over the settings'.
    assert advertised_url(served, "10.0.0.6", 9001) == "http://10.0.0.6:9001"
    assert advertised_url(load_settings({}), "::1", 8000) == "http://[::1]:8000"
    # A wildcard address is not one to reach: the machine's name is.
    monkeypatch.setattr("socket.gethostname", lambda: "node-7")
    assert advertised_url(load_settings({"BALANCE_HOST": "0.0.0.0"})) == "http://node-7:8000"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://10.0.0.5:8000", "http://10.0.0.5:8000"),
        ("https://api-2.internal/", "https://api-2.internal"),
    ],
)
def test_a_configured_advertised_url_wins(value: str, expected: str) -> None:
    settings = load_settings({"BALANCE_ADVERTISED_URL": value, "BALANCE_PORT": "9000"})
    assert advertised_url(settings, "10.0.0.6", 9001) == expected


@pytest.mark.parametrize("value", ["10.0.0.5:8000", "ftp://host", "http://host/api", "http://"])
def test_an_advertised_url_that_is_not_a_base_url_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="BALANCE_ADVERTISED_URL"):
        advertised_url(load_settings({"BALANCE_ADVERTISED_URL": value}))
