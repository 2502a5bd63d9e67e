"""The ``memory`` backends: an event store and a read model in process memory, for tests.

Register this module with the plugin manager; ``plugin`` names it for the host.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Final

from core.config import Settings
from core.container import Container
from core.hookspecs import hookimpl
from core.registry import BackendOffer
from plugins.memory.readmodel import MemoryReadModel
from plugins.memory.store import MemoryEventStore

__all__ = ["NAME", "balance_backends", "plugin"]

NAME: Final = "memory"


def _event_store(settings: Settings, container: Container) -> MemoryEventStore:
    return MemoryEventStore()


def _read_model(settings: Settings, container: Container) -> MemoryReadModel:
    return MemoryReadModel()


@hookimpl
def balance_backends() -> list[BackendOffer]:
    return [
        BackendOffer(port="event_store", name=NAME, factory=_event_store),
        BackendOffer(port="read_model", name=NAME, factory=_read_model),
    ]


plugin: Final[ModuleType] = sys.modules[__name__]
