"""The ``mongo`` plugin: the accounts read model on MongoDB (``BALANCE_READ_MODEL=mongo``), and
the ``balance projector`` command that keeps it up to date from its own process.

Settings: see ``plugins.mongo.config`` (``BALANCE_MONGO_URL`` is required when selected).
Register this module with the plugin manager; ``plugin`` names it for the host.

The driver (beanie and pymongo, the ``mongo`` extra) is imported only when the backend is built:
this module loads without it, and selecting the backend without it is a ``ConfigError``.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Final

import click

from core.config import ConfigError, Setting, Settings
from core.container import Container
from core.hookspecs import hookimpl
from core.registry import BackendOffer
from plugins.mongo.cli import projector
from plugins.mongo.config import SETTINGS, MongoConfig

if TYPE_CHECKING:
    from plugins.mongo.readmodel import MongoReadModel

__all__ = ["NAME", "balance_backends", "balance_cli_commands", "balance_settings", "plugin"]

NAME: Final = "mongo"
DRIVERS: Final = ("beanie", "pymongo", "bson")
INSTALL: Final = "pip install 'account-balance[mongo]'"


def _read_model(settings: Settings, container: Container) -> MongoReadModel:
    try:
        from plugins.mongo.readmodel import MongoReadModel
    except ModuleNotFoundError as error:
        if error.name is None or error.name.partition(".")[0] not in DRIVERS:
            raise
        raise ConfigError(
            f"BALANCE_READ_MODEL=mongo needs the MongoDB driver ({error.name} is not installed): "
            f"{INSTALL}"
        ) from None
    return MongoReadModel(MongoConfig.from_settings(settings))


@hookimpl
def balance_backends() -> list[BackendOffer]:
    return [BackendOffer(port="read_model", name=NAME, factory=_read_model)]


@hookimpl
def balance_cli_commands() -> list[click.Command]:
    return [projector]


@hookimpl
def balance_settings() -> tuple[Setting, ...]:
    return SETTINGS


plugin: Final[ModuleType] = sys.modules[__name__]
