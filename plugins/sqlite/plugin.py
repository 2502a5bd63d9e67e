"""The ``sqlite`` backends, the default: events and snapshots in ``events.db``, the accounts
views in ``views.db``, both in ``settings.data_dir``.

Options (all optional): ``BALANCE_SQLITE_MAX_BATCH`` (appends per transaction, 1000),
``BALANCE_SQLITE_READERS`` (read connections per file, 4). Register this module with the plugin
manager; ``plugin`` names it for the host.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Final

from core.config import Setting, Settings, declare
from core.container import Container
from core.eventsourcing.writer import DEFAULT_MAX_BATCH
from core.hookspecs import hookimpl
from core.registry import BackendOffer
from plugins.sqlite.readmodel import SqliteReadModel
from plugins.sqlite.store import SqliteEventStore

__all__ = ["NAME", "SETTINGS", "balance_backends", "balance_settings", "plugin"]

NAME: Final = "sqlite"

SETTINGS: Final = declare(
    "sqlite",
    max_batch=("appends per transaction", DEFAULT_MAX_BATCH),
    readers=("read connections per database file", 4),
)


def _event_store(settings: Settings, container: Container) -> SqliteEventStore:
    return SqliteEventStore(
        settings.data_dir,
        max_batch=settings.get_int("sqlite_max_batch", DEFAULT_MAX_BATCH),
        readers=settings.get_int("sqlite_readers", 4),
    )


def _read_model(settings: Settings, container: Container) -> SqliteReadModel:
    return SqliteReadModel(settings.data_dir, readers=settings.get_int("sqlite_readers", 4))


@hookimpl
def balance_backends() -> list[BackendOffer]:
    return [
        BackendOffer(port="event_store", name=NAME, factory=_event_store),
        BackendOffer(port="read_model", name=NAME, factory=_read_model),
    ]


@hookimpl
def balance_settings() -> tuple[Setting, ...]:
    return SETTINGS


plugin: Final[ModuleType] = sys.modules[__name__]
