"""Settings: one backend per port, chosen by name, from ``BALANCE_*`` variables and a TOML file.

Precedence: environment over TOML over defaults. A TOML table flattens into its keys with an
underscore (``[kafka] bootstrap = ...`` is ``kafka_bootstrap``), which is also the variable name
without its prefix (``BALANCE_KAFKA_BOOTSTRAP``). The defaults need no server.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from core.errors import BalanceError

__all__ = [
    "CORE_SETTINGS",
    "ConfigError",
    "MissingSettingError",
    "Setting",
    "Settings",
    "Unset",
    "advertised_url",
    "declare",
    "load_settings",
    "env_name",
    "reading_only",
]

PREFIX: Final = "BALANCE_"
_SECRET_WORDS: Final = ("secret", "password", "token", "private_key", "api_key")
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@]+:)(?P<password>[^@]+)@")
_ON: Final = frozenset({"on", "true", "1", "yes"})
_OFF: Final = frozenset({"off", "false", "0", "no"})


class ConfigError(BalanceError):
    """The configuration cannot be used as given."""


class MissingSettingError(ConfigError):
    def __init__(self, key: str) -> None:
        super().__init__(f"missing required setting {env_name(key)}")
        self.key = key


def env_name(key: str) -> str:
    return PREFIX + key.upper()


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "account-balance"


@dataclass(frozen=True, slots=True)
class Settings:
    event_store: str = "sqlite"
    read_model: str = "sqlite"
    authenticator: str = "jwt"
    data_dir: Path = field(default_factory=default_data_dir)
    disabled_plugins: frozenset[str] = frozenset()
    # False in a process that appends no event (a projector, a rebuild): a store whose
    # partitions the instances of a group own gives such a process none to write.
    writes_events: bool = True
    values: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)

    def require(self, key: str) -> str:
        value = self.values.get(key)
        if value is None or value == "":
            raise MissingSettingError(key)
        return value

    def get_int(self, key: str, default: int) -> int:
        raw = self.values.get(key)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            # Masked: the message may be logged, and the value may be a secret set by mistake.
            shown = _mask(key, raw)
            raise ConfigError(f"{env_name(key)} must be a whole number, got {shown!r}") from None

    def get_float(self, key: str, default: float) -> float:
        raw = self.values.get(key)
        if raw is None or raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            shown = _mask(key, raw)
            raise ConfigError(f"{env_name(key)} must be a number, got {shown!r}") from None

    def masked(self) -> dict[str, str]:
        """Every resolved setting, with secrets replaced, for display."""
        shown: dict[str, str] = {
            "event_store": self.event_store,
            "read_model": self.read_model,
            "authenticator": self.authenticator,
            "data_dir": str(self.data_dir),
            "disabled_plugins": ",".join(sorted(self.disabled_plugins)),
            "writes_events": "on" if self.writes_events else "off",
        }
        for key, value in sorted(self.values.items()):
            shown[key] = _mask(key, value)
        return shown


@dataclass(frozen=True, slots=True)
class Setting:
    """A key's definition, for the reference (``balance config --markdown``, which
    docs/configuration.md holds): core keys below, plugins' through ``balance_settings``, each
    declared with ``declare``.
    ``default`` is the value as one would write it; without one, ``unset`` says what happens."""

    key: str
    meaning: str
    default: str = ""
    unset: str = "not set"
    # The server's own keys (the composition root, `balance serve`), apart from the core ones.
    server: bool = False


@dataclass(frozen=True, slots=True)
class Unset:
    """A key declared without a default: its meaning, and what happens while it is not set."""

    meaning: str
    unset: str = "not set"


def declare(
    prefix: str,
    /,
    *,
    server: bool = False,
    **keys: str | Unset | tuple[str, str | int | float],
) -> tuple[Setting, ...]:
    """The ``Setting`` of each keyword, in order, keyed ``<prefix>_<keyword>`` (the keyword
    alone when ``prefix`` is empty): a ``(meaning, default)`` pair, an ``Unset``, or a meaning
    alone (no default, "not set")."""
    declared: list[Setting] = []
    for name, value in keys.items():
        key = f"{prefix}_{name}" if prefix else name
        if isinstance(value, tuple):
            meaning, default = value
            declared.append(Setting(key, meaning, str(default), server=server))
        elif isinstance(value, Unset):
            declared.append(Setting(key, value.meaning, unset=value.unset, server=server))
        else:
            declared.append(Setting(key, value, server=server))
    return tuple(declared)


DEFAULT_FORWARD_MAX_HOPS: Final = 2
DEFAULT_FORWARD_TIMEOUT: Final = 10.0
_WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::", "[::]"})
_URL: Final = re.compile(r"https?://[^/?#\s]+/?")

CORE_SETTINGS: Final[tuple[Setting, ...]] = declare(
    "",
    config=Unset("the TOML file; from the environment only", "`./balance.toml` if it exists"),
    event_store=("the event store backend, by name", "sqlite"),
    read_model=("the read model backend, by name", "sqlite"),
    authenticator=("the authenticator backend, by name", "jwt"),
    data_dir=Unset(
        "where file-based backends keep their files (the SQLite databases, the Kafka store's "
        "local index, the generated JWT secret); `~` is expanded",
        "`$XDG_DATA_HOME/account-balance`, else `~/.local/share/account-balance`",
    ),
    disabled_plugins=Unset("plugin names to leave out, comma-separated (a list in TOML)", "none"),
    writes_events=(
        "`off`: this process appends no event (`balance projector` and `balance projections "
        "rebuild` set it): a store whose partitions the instances of a group own (Kafka) gives "
        "it no partition to write, and every stream is written elsewhere; a store that one "
        "process writes (SQLite, memory) does not look at it",
        "on",
    ),
) + declare(
    "",
    server=True,
    host=("the interface `balance serve` listens on (`--host` wins)", "127.0.0.1"),
    port=("the port `balance serve` listens on (`--port` wins)", 8000),
    workers=(
        "`balance serve`'s worker processes (`--workers` wins); with more than one, the account "
        "cache is off and each command reads its account from the store",
        1,
    ),
    log_level=(
        "the level of the JSON log lines on stderr: `DEBUG`, `INFO`, `WARNING`, `ERROR`",
        "INFO",
    ),
    access_log=(
        "`true` (or `1`, `yes`, `on`): a log line per request, and the mediator's per-request "
        "lines",
        "false",
    ),
    max_body_bytes=(
        "the largest request body accepted; a larger one is a 413 problem (`body-too-large`)",
        65536,
    ),
    projector=(
        "`off`: this process does not run the projector (`balance projector` runs it elsewhere)",
        "inline",
    ),
    advertised_url=Unset(
        "the base URL other instances reach this one at: where a store whose partitions "
        "several instances own sends the commands for this instance's streams (see "
        "docs/architecture.md, Routing between instances)",
        "`http://<host>:<port>` of the server; a wildcard host (`0.0.0.0`, `::`) gives the "
        "machine's name",
    ),
    forward_max_hops=(
        "how many times a command may be forwarded to the instance that writes its account "
        "before it is answered 503 (`store-unavailable`, with `Retry-After`) instead",
        DEFAULT_FORWARD_MAX_HOPS,
    ),
    forward_timeout=(
        "seconds to wait for the instance a command was forwarded to; past it the answer is "
        "503 and the caller retries with the same `Idempotency-Key`",
        DEFAULT_FORWARD_TIMEOUT,
    ),
    switch_interval=(
        "Python's GIL switch interval in seconds (`sys.setswitchinterval`), set once by the "
        "server (`api/runtime.py`): the SQLite writer and reader threads get the GIL back from "
        "the busy event loop sooner than after Python's default 5 ms; `0` leaves Python's "
        "default",
        "0.0005",
    ),
    gc_threshold=(
        "Python's garbage-collector thresholds (`gc.set_threshold`), set once by the server, "
        "which also collects and `gc.freeze()`s its start-up objects: the collector's full pass "
        "no longer walks them (it took up to 73 ms under load, 14 times in 25 s); `default` "
        "keeps Python's thresholds and freezes nothing. See `api/runtime.py`",
        "5000,20,100",
    ),
)


def advertised_url(settings: Settings, host: str | None = None, port: int | None = None) -> str:
    """``BALANCE_ADVERTISED_URL`` without a trailing slash, else the server's own address from
    ``host`` and ``port`` (the command line's) or the settings; ``ConfigError`` when the setting
    is not an http(s) URL of a host alone."""
    configured = (settings.get("advertised_url") or "").strip()
    if configured:
        if not _URL.fullmatch(configured):
            raise ConfigError(
                f"{env_name('advertised_url')} must be an http(s) URL with no path, such as "
                f"http://10.0.0.5:8000, not {configured!r}"
            )
        return configured.rstrip("/")
    name = host if host is not None else settings.get("host") or "127.0.0.1"
    if name in _WILDCARD_HOSTS:
        name = socket.gethostname()
    elif ":" in name and not name.startswith("["):
        name = f"[{name}]"  # an IPv6 address
    return f"http://{name}:{port if port is not None else settings.get_int('port', 8000)}"


def reading_only(settings: Settings) -> Settings:
    """``settings`` for a process that appends no event (``writes_events`` off)."""
    return replace(settings, writes_events=False)


def _switch(key: str, raw: str, default: bool) -> bool:
    value = raw.strip().lower()
    if not value:
        return default
    if value in _ON or value in _OFF:
        return value in _ON
    raise ConfigError(f"{env_name(key)} must be on or off, got {_mask(key, raw)!r}")


def _mask(key: str, value: str) -> str:
    if any(word in key for word in _SECRET_WORDS):
        return "********" if value else ""
    return _URL_PASSWORD.sub(r"\g<scheme>********@", value)


def _flatten(table: Mapping[str, object], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}".lower().replace("-", "_")
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "_"))
        elif isinstance(value, list):
            flat[name] = ",".join(str(item) for item in value)
        elif isinstance(value, bool):
            flat[name] = "true" if value else "false"
        else:
            flat[name] = str(value)
    return flat


def _read_toml(path: Path) -> dict[str, str]:
    try:
        with path.open("rb") as handle:
            return _flatten(tomllib.load(handle))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"configuration file {path} is not valid TOML: {error}") from None


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Resolve the settings. ``BALANCE_CONFIG`` names the TOML file; ``./balance.toml`` is used
    when it exists and nothing else is named."""
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    named = config_file or (Path(env[PREFIX + "CONFIG"]) if env.get(PREFIX + "CONFIG") else None)
    if named is not None:
        values.update(_read_toml(named))
    elif Path("balance.toml").is_file():
        values.update(_read_toml(Path("balance.toml")))
    for name, value in env.items():
        if name.startswith(PREFIX) and name != PREFIX + "CONFIG":
            values[name[len(PREFIX) :].lower()] = value

    data_dir = values.pop("data_dir", "")
    disabled = values.pop("disabled_plugins", "")
    writes = _switch("writes_events", values.pop("writes_events", ""), default=True)
    return Settings(
        event_store=values.pop("event_store", "") or "sqlite",
        read_model=values.pop("read_model", "") or "sqlite",
        authenticator=values.pop("authenticator", "") or "jwt",
        data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(),
        disabled_plugins=frozenset(n.strip() for n in disabled.split(",") if n.strip()),
        writes_events=writes,
        values=values,
    )
