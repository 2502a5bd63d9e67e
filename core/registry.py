"""What plugins hand to the host: the ports they declare and the backends they offer for them,
their problem types, their start-up work, and a registry for mediator contributions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from core.auth import Authenticator
from core.config import Settings, env_name
from core.container import Container
from core.mediator_builder import MediatorBuilder
from core.ports import EventStore

__all__ = [
    "CORE_PORTS",
    "BackendOffer",
    "Port",
    "PortSpec",
    "ProblemType",
    "Projector",
    "Registry",
    "Startup",
]

# A port's name, which is also its settings key (``BALANCE_<PORT>``).
Port = str


@dataclass(frozen=True, slots=True)
class PortSpec:
    """A port: configuration selects one backend for it by name (``BALANCE_<NAME>``, else
    ``default``), and the selected backend is registered in the container under ``services``."""

    name: Port
    services: tuple[type[Any], ...]
    default: str

    @property
    def key(self) -> str:
        return env_name(self.name)


# The kernel's own ports; a plugin declares the ports its handlers need (``balance_ports``).
CORE_PORTS: Final = (
    PortSpec("event_store", (EventStore,), "sqlite"),
    PortSpec("authenticator", (Authenticator,), "jwt"),
)


@dataclass(frozen=True, slots=True)
class BackendOffer:
    """A backend for ``port`` under ``name``; ``factory(settings, container)`` builds it once,
    and only when configuration selects it."""

    port: Port
    name: str
    factory: Callable[[Settings, Container], Any]


@dataclass(frozen=True, slots=True)
class ProblemType:
    """How the HTTP shell answers an error class: an RFC 9457 problem ``type`` (``slug`` under
    ``/problems/``), its status and title, and a description for the problem's documentation.
    ``detail``, when given, returns the problem's ``detail`` and its extension members (for
    example ``{"field": ...}``) for an error of this type; otherwise ``str(error)`` is the
    detail."""

    slug: str
    status: int
    title: str
    description: str
    detail: Callable[[Any], tuple[str | None, Mapping[str, Any]]] | None = None


class Projector(Protocol):
    """A read-model projector, as the host drives it: the ``balance projections rebuild``
    command, the metrics, and a projector run in a process of its own."""

    @property
    def applied(self) -> int: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    async def rebuild(self, on_progress: Callable[[int, int | None], None] | None = None) -> int:
        """``on_progress(applied, total)`` after each batch; ``total`` None when unknown."""
        ...


class Startup(Protocol):
    """Work a plugin does when the application starts and stops (``balance_lifecycle``), after
    the backends are open and before they close. ``background``: also start the work that runs
    until ``close`` (a projector following the store); false for one-off commands."""

    async def start(self, background: bool) -> None: ...

    async def close(self) -> None: ...


class Registry:
    """What a plugin's ``balance_register`` hook receives: the mediator builder, bound to the
    plugin's name (so duplicate handlers name both plugins) and to the container (so a class
    given here is built with its constructor dependencies injected, once, at start-up)."""

    def __init__(self, builder: MediatorBuilder, container: Container, plugin: str) -> None:
        self._builder = builder
        self._container = container
        self.plugin = plugin

    def _provide(self, component: Any) -> Any:
        if isinstance(component, type):
            return lambda: self._container.build(component)
        return component

    def handler(self, request_type: type[Any], handler: Any) -> None:
        self._builder.add_handler(request_type, self._provide(handler), plugin=self.plugin)

    def stream_handler(self, request_type: type[Any], handler: Any) -> None:
        self._builder.add_stream_handler(request_type, self._provide(handler), plugin=self.plugin)

    def notification_handler(self, notification_type: type[Any], handler: Any) -> None:
        self._builder.add_notification_handler(
            notification_type, self._provide(handler), plugin=self.plugin
        )

    def behavior(self, behavior: Any, request_type: type[Any] | None = None) -> None:
        self._builder.add_behavior(
            self._provide(behavior), plugin=self.plugin, request_type=request_type
        )

    def stream_behavior(self, behavior: Any, request_type: type[Any] | None = None) -> None:
        self._builder.add_stream_behavior(
            self._provide(behavior), plugin=self.plugin, request_type=request_type
        )

    def pre_processor(self, processor: Any, request_type: type[Any] | None = None) -> None:
        self._builder.add_pre_processor(
            self._provide(processor), plugin=self.plugin, request_type=request_type
        )

    def post_processor(self, processor: Any, request_type: type[Any] | None = None) -> None:
        self._builder.add_post_processor(
            self._provide(processor), plugin=self.plugin, request_type=request_type
        )

    def exception_handler(
        self, exception_type: type[Exception], handler: Any, request_type: type[Any] | None = None
    ) -> None:
        self._builder.add_exception_handler(
            exception_type, self._provide(handler), plugin=self.plugin, request_type=request_type
        )

    def exception_action(
        self, exception_type: type[Exception], action: Any, request_type: type[Any] | None = None
    ) -> None:
        self._builder.add_exception_action(
            exception_type, self._provide(action), plugin=self.plugin, request_type=request_type
        )
