"""What a plugin can contribute. Each spec's body is only its docstring; pluggy calls the
implementations that plugins mark with ``@hookimpl``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from core.config import Setting, Settings
    from core.container import Container
    from core.registry import BackendOffer, Registry

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "balance"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def balance_backends() -> Sequence[BackendOffer]:
    """Backends this plugin offers, each for one port (``event_store``, ``read_model``,
    ``authenticator``) under a name that configuration selects, with a factory
    ``(settings, container) -> backend``. Only the selected ones are built, once each."""


@hookspec
def balance_settings() -> Sequence[Setting]:
    """The keys this plugin reads (``BALANCE_<KEY>``), for the configuration reference
    (``balance config --markdown``, docs/configuration.md)."""


@hookspec
def balance_services(container: Container, settings: Settings) -> None:
    """Register the services this plugin's handlers need in the container. Called after the
    selected backends are registered, so factories here may resolve them."""


@hookspec
def balance_register(registry: Registry) -> None:
    """Add request handlers, notification handlers, behaviors, processors and exception
    handlers to the mediator through ``registry``, which records this plugin's name."""


@hookspec
def balance_routes() -> Sequence[object]:
    """Litestar route handlers or controllers this plugin adds to the HTTP app."""


@hookspec
def balance_cli_commands() -> Sequence[object]:
    """Click commands this plugin adds to the ``balance`` command line."""
