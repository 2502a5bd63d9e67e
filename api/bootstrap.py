"""The composition root: settings → plugins → ports and backends → services → mediator → start-up
work. The HTTP app, the CLI and the tests all build the application here, and nothing is built
at import time. It names no domain: the plugins declare their ports, services, handlers and
start-up work through hooks (``core.hookspecs``), and are found through their entry points."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from core.config import ConfigError, Settings, load_settings
from core.container import Container
from core.mediator import Mediator
from core.mediator_builder import MediatorBuilder
from core.placement import StreamPlacement, single_writer
from core.plugins import collect, make_plugin_manager
from core.ports import Lifecycle, SnapshotStore
from core.registry import CORE_PORTS, BackendOffer, Port, PortSpec, Projector, Registry, Startup

__all__ = ["Application", "bootstrap"]

log = logging.getLogger(__name__)


@dataclass
class Application:
    settings: Settings
    container: Container
    mediator: Mediator
    plugins: pluggy.PluginManager
    backends: dict[Port, Any]
    run_projector: bool = True
    startup: tuple[Startup, ...] = ()

    def routes(self) -> list[tuple[str, object]]:
        return collect(self.plugins, "balance_routes")

    def problem_types(self) -> list[tuple[str, Any]]:
        return collect(self.plugins, "balance_problem_types")

    def openapi_additions(self) -> list[tuple[str, object]]:
        return collect(self.plugins, "balance_openapi")

    def cli_commands(self) -> list[tuple[str, object]]:
        return collect(self.plugins, "balance_cli_commands")

    @property
    def projector(self) -> Projector:
        """The read-model projector a plugin registered (``core.registry.Projector``)."""
        return self.container.resolve(Projector)

    def projected(self) -> int:
        """How many events the in-process projector applied; 0 without a projector."""
        try:
            return self.projector.applied
        except Exception:
            return 0

    async def start(self) -> None:
        """Open the backends, then run each plugin's start-up work (bring the read model up to
        date, finish interrupted transfers, keep projecting in the background when
        ``run_projector``). What was opened is closed if a step fails."""
        try:
            for backend in _unique(self.backends.values()):
                if isinstance(backend, Lifecycle):
                    await backend.start()
            for work in self.startup:
                await work.start(self.run_projector)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for work in reversed(self.startup):
            await work.close()
        for backend in reversed(_unique(self.backends.values())):
            if isinstance(backend, Lifecycle):
                await backend.close()


def _unique(backends: Any) -> list[Any]:
    seen: list[Any] = []
    for backend in backends:
        if all(backend is not other for other in seen):
            seen.append(backend)
    return seen


def _selected(settings: Settings, port: PortSpec) -> str:
    # The kernel's settings keep the first ports as fields; any other port's key is a value.
    field = getattr(settings, port.name, None)
    chosen = field if isinstance(field, str) else settings.get(port.name)
    return chosen or port.default


def _select_backends(
    manager: pluggy.PluginManager, settings: Settings, container: Container
) -> dict[Port, Any]:
    ports = {port.name: port for port in CORE_PORTS}
    for plugin, port in collect(manager, "balance_ports"):
        if port.name in ports:
            raise ConfigError(f"plugin {plugin!r} declares the port {port.name!r} a second time")
        ports[port.name] = port
    offers: dict[Port, dict[str, BackendOffer]] = {name: {} for name in ports}
    for plugin, offer in collect(manager, "balance_backends"):
        if offer.port not in offers:
            log.debug("plugin %r offers a backend for the undeclared port %r", plugin, offer.port)
            continue
        offers[offer.port][offer.name] = offer
    built: dict[Any, Any] = {}
    backends: dict[Port, Any] = {}
    for name, port in ports.items():
        chosen = _selected(settings, port)
        offer = offers[name].get(chosen)
        if offer is None:
            available = ", ".join(sorted(offers[name])) or "none"
            raise ConfigError(
                f"unknown {name} backend {chosen!r} ({port.key}); available: {available}"
            )
        # One factory offered for two ports (a backend serving both) builds one instance.
        if offer.factory not in built:
            built[offer.factory] = offer.factory(settings, container)
        backend = built[offer.factory]
        backends[name] = backend
        for service in port.services:
            container.register_instance(service, backend)
        if name == "event_store" and isinstance(backend, SnapshotStore):
            container.register_instance(SnapshotStore, backend)
    return backends


def bootstrap(
    settings: Settings | None = None,
    *,
    overrides: Mapping[type[Any], object] | None = None,
    extra_plugins: Mapping[str, object] | None = None,
    run_projector: bool | None = None,
) -> Application:
    """``run_projector``: keep the read model up to date in this process; by default unless
    ``BALANCE_PROJECTOR=off`` (when ``balance projector`` runs it elsewhere)."""
    settings = settings or load_settings()
    manager = make_plugin_manager(disabled=settings.disabled_plugins, extra=extra_plugins)
    container = Container()
    container.register_instance(Settings, settings)
    backends = _select_backends(manager, settings, container)
    for _ in collect(manager, "balance_services", container=container, settings=settings):
        pass
    for service, instance in (overrides or {}).items():
        container.register_instance(service, instance)
    if not container.has(StreamPlacement):
        # A store written by one process: every stream is written here. A store whose
        # partitions several instances own registers its own placement.
        container.register_instance(StreamPlacement, single_writer())
    builder = MediatorBuilder()
    for impl in manager.hook.balance_register.get_hookimpls():  # registration order
        impl.function(Registry(builder, container, impl.plugin_name))
    mediator = builder.build()
    container.register_instance(Mediator, mediator)
    startup = tuple(
        work for _plugin, work in collect(manager, "balance_lifecycle", container=container)
    )
    if run_projector is None:
        run_projector = (settings.get("projector") or "inline").lower() != "off"
    return Application(settings, container, mediator, manager, backends, run_projector, startup)
