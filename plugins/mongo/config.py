"""The Mongo plugin's settings (``BALANCE_MONGO_*``).

``BALANCE_MONGO_URL`` (required when ``BALANCE_READ_MODEL=mongo``), ``BALANCE_MONGO_DATABASE``
(``account_balance``), ``BALANCE_MONGO_TIMEOUT_MS`` (server selection and connect timeout, 3000),
``BALANCE_MONGO_BULK_CHUNK`` (writes per bulk command, 1000), ``BALANCE_MONGO_GENERATION_POLL_MS``
(how often readers look for a rebuild's switch, 1000).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from core.config import ConfigError, Settings, Unset, declare, env_name

__all__ = ["DEFAULT_DATABASE", "SETTINGS", "MongoConfig"]

DEFAULT_DATABASE: Final = "account_balance"

SETTINGS: Final = declare(
    "mongo",
    url=Unset(
        "the server, `mongodb://...` or `mongodb+srv://...`; a missing one fails at start-up "
        "naming the variable",
        "required with `mongo`",
    ),
    database=("the read model's database", DEFAULT_DATABASE),
    timeout_ms=(
        "server selection and connect timeout: how soon an unreachable server becomes "
        "`StoreUnavailableError`",
        3000,
    ),
    bulk_chunk=("writes (inserts or guarded updates) per bulk command", 1000),
    generation_poll_ms=(
        "how often a process looks at the read model's generation pointer, so that it reads the "
        "new generation within this long after a rebuild switched; a rebuild keeps the old "
        "generation three times this long after its switch (0: look before every query)",
        1000,
    ),
)
# MongoDB refuses these characters in database names; 63 bytes is its length limit.
_DATABASE_NAME: Final = re.compile(r'[^/\\. "$*<>:|?\x00]{1,63}')


@dataclass(frozen=True, slots=True)
class MongoConfig:
    url: str
    database: str = DEFAULT_DATABASE
    timeout_ms: int = 3000
    bulk_chunk: int = 1000
    generation_poll_ms: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> MongoConfig:
        config = cls(
            url=settings.require("mongo_url"),
            database=settings.get("mongo_database") or DEFAULT_DATABASE,
            timeout_ms=settings.get_int("mongo_timeout_ms", 3000),
            bulk_chunk=settings.get_int("mongo_bulk_chunk", 1000),
            generation_poll_ms=settings.get_int("mongo_generation_poll_ms", 1000),
        )
        config.check()
        return config

    def check(self) -> None:
        if not self.url.startswith(("mongodb://", "mongodb+srv://")):
            raise ConfigError(f"{env_name('mongo_url')} must be a mongodb:// or mongodb+srv:// URL")
        if _DATABASE_NAME.fullmatch(self.database) is None:
            raise ConfigError(
                f"{env_name('mongo_database')}: {self.database!r} is not a MongoDB database name"
            )
        if self.generation_poll_ms < 0:
            raise ConfigError(
                f"{env_name('mongo_generation_poll_ms')} must be at least 0, "
                f"got {self.generation_poll_ms}"
            )
        for key, value in (
            ("mongo_timeout_ms", self.timeout_ms),
            ("mongo_bulk_chunk", self.bulk_chunk),
        ):
            if value < 1:
                raise ConfigError(f"{env_name(key)} must be at least 1, got {value}")
