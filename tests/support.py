"""Helpers the test layers share: principals, a test authenticator plugin, an app on a backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api.bootstrap import Application, bootstrap
from core.config import Settings
from core.hookspecs import hookimpl
from core.ports import Principal
from core.registry import BackendOffer
from handlers.accounts.requests import CommandContext
from handlers.accounts.services import Clock

READ_WRITE = frozenset({"accounts:read", "accounts:write"})
ALICE = Principal("alice", READ_WRITE)
BOB = Principal("bob", READ_WRITE)
TELLER = Principal("teller-1", READ_WRITE, frozenset({"teller"}))


def ctx(actor: Principal = ALICE, **kwargs: Any) -> CommandContext:
    return CommandContext(actor=actor, **kwargs)


class FixedTokens:
    """An authenticator for tests that never touch HTTP: the token is the subject."""

    async def authenticate(self, token: str) -> Principal:
        return Principal(token, READ_WRITE)


class _TestAuthPlugin:
    @hookimpl
    def balance_backends(self) -> list[BackendOffer]:
        return [BackendOffer("authenticator", "fixed", lambda settings, container: FixedTokens())]


class FakeClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def settings_for(backend: str, data_dir: Path, **values: str) -> Settings:
    return replace(
        Settings(),
        event_store=backend,
        read_model=backend,
        authenticator="fixed",
        data_dir=data_dir,
        values=values,
    )


def build(
    settings: Settings, extra_plugins: dict[str, object] | None = None, **kwargs: Any
) -> Application:
    plugins = {"test-auth": _TestAuthPlugin(), **(extra_plugins or {})}
    return bootstrap(settings, extra_plugins=plugins, **kwargs)


@asynccontextmanager
async def running(settings: Settings, **kwargs: Any) -> AsyncIterator[Application]:
    app = build(settings, **kwargs)
    await app.start()
    try:
        yield app
    finally:
        await app.close()
