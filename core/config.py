"""Settings: one backend per port, chosen by name, from ``BALANCE_*`` variables and a TOML file.

Precedence: environment over TOML over defaults. A TOML table flattens into its keys with an
underscore (``[kafka] bootstrap = ...`` is ``kafka_bootstrap``), which is also the variable name
without its prefix (``BALANCE_KAFKA_BOOTSTRAP``). The defaults need no server.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from core.errors import BalanceError

__all__ = ["ConfigError", "MissingSettingError", "Settings", "load_settings", "env_name"]

PREFIX: Final = "BALANCE_"
_SECRET_WORDS: Final = ("secret", "password", "token", "private_key", "api_key")
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@]+:)(?P<password>[^@]+)@")


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
        }
        for key, value in sorted(self.values.items()):
            shown[key] = _mask(key, value)
        return shown


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
    return Settings(
        event_store=values.pop("event_store", "") or "sqlite",
        read_model=values.pop("read_model", "") or "sqlite",
        authenticator=values.pop("authenticator", "") or "jwt",
        data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(),
        disabled_plugins=frozenset(n.strip() for n in disabled.split(",") if n.strip()),
        values=values,
    )
