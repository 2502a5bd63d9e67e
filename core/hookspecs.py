"""What a plugin can contribute. Each spec's body is only its docstring; pluggy calls the
implementations that plugins mark with ``@hookimpl``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from core.config import Setting, Settings
    from core.container import Container
    from core.registry import BackendOffer, PortSpec, ProblemType, Registry, Startup

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "balance"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def balance_ports() -> Sequence[PortSpec]:
    """Ports this plugin's handlers need, besides the kernel's own (``event_store``,
    ``authenticator``): each names its settings key, the service types the selected backend is
    registered under, and the default backend's name."""


@hookspec
def balance_backends() -> Sequence[BackendOffer]:
    """Backends this plugin offers, each for one declared port (``event_store``,
    ``authenticator``, or a plugin's, such as ``read_model``) under a name that configuration
    selects, with a factory ``(settings, container) -> backend``. Only the selected ones are
    built, once each."""


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
def balance_lifecycle(container: Container) -> Sequence[Startup]:
    """Work to do when the application starts (after the backends open, in registration order)
    and stops (before they close, in reverse order): catching a projection up and running it,
    finishing what a crash interrupted. Called once the mediator is in the container."""


@hookspec
def balance_routes() -> Sequence[object]:
    """Litestar route handlers or controllers this plugin adds to the HTTP app."""


@hookspec
def balance_problem_types() -> Mapping[type[BaseException], ProblemType]:
    """How the HTTP app answers this plugin's errors: each error class (and its subclasses,
    unless they have their own) with an RFC 9457 problem type."""


@hookspec
def balance_openapi() -> Sequence[object]:
    """Additions to the OpenAPI document: Litestar ``Tag`` objects (in the order the document
    lists them) and ``OpenAPISchemaPlugin`` instances for this plugin's schemas."""


@hookspec
def balance_cli_commands() -> Sequence[object]:
    """Click commands this plugin adds to the ``balance`` command line."""
