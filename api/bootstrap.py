"""The composition root: settings → plugins → backends → services → mediator. The HTTP app, the
CLI and the tests all build the application here, and nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pluggy

from core.config import ConfigError, Settings, load_settings
from core.container import Container
from core.mediator import Mediator
from core.mediator_builder import MediatorBuilder
from core.plugins import collect, make_plugin_manager
from core.ports import Authenticator, EventStore, Lifecycle, SnapshotStore
from core.registry import PORTS, BackendOffer, Port, Registry
from handlers.accounts.projector import Projector
from handlers.accounts.readmodel import AccountReadModel
from handlers.accounts.requests import ResumeTransfers

__all__ = ["BUILTIN_PLUGINS", "Application", "bootstrap"]

log = logging.getLogger(__name__)

# Built-in plugins by name; each is imported only when not disabled.
BUILTIN_PLUGINS: Final[dict[str, str]] = {
    "accounts": "handlers.accounts.plugin",
    "auth": "handlers.auth_plugin",
    "memory": "plugins.memory.plugin",
    "sqlite": "plugins.sqlite.plugin",
    "kafka": "plugins.kafka.plugin",
    "jwt": "plugins.jwt.plugin",
    "mongo": "plugins.mongo.plugin",
}

# The service types a backend selected for each port is registered under.
PORT_SERVICES: Final[dict[Port, tuple[type[Any], ...]]] = {
    "event_store": (EventStore,),
    "read_model": (AccountReadModel,),
    "authenticator": (Authenticator,),
}


@dataclass
class Application:
    settings: Settings
    container: Container
    mediator: Mediator
    plugins: pluggy.PluginManager
    backends: dict[Port, Any]
    run_projector: bool = True
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def routes(self) -> list[tuple[str, object]]:
        return collect(self.plugins, "balance_routes")

    def cli_commands(self) -> list[tuple[str, object]]:
        return collect(self.plugins, "balance_cli_commands")

    @property
    def projector(self) -> Projector:
        return self.container.resolve(Projector)

    async def start(self) -> None:
        """Open the backends, bring the read model up to date, finish interrupted transfers,
        then keep projecting in the background. What was opened is closed if a step fails."""
        try:
            for backend in _unique(self.backends.values()):
                if isinstance(backend, Lifecycle):
                    await backend.start()
            if self.run_projector:
                await self.projector.catch_up()
            resumed = await self.mediator.send(ResumeTransfers())
        except BaseException:
            await self.close()
            raise
        if resumed:
            log.info("resumed %d pending transfers", resumed)
        if self.run_projector:
            self._stop.clear()
            self._tasks.append(asyncio.create_task(self.projector.run(self._stop)))

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.projector.close()
        for backend in reversed(_unique(self.backends.values())):
            if isinstance(backend, Lifecycle):
                await backend.close()


def _unique(backends: Any) -> list[Any]:
    seen: list[Any] = []
    for backend in backends:
        if all(backend is not other for other in seen):
            seen.append(backend)
    return seen


def _select_backends(
    manager: pluggy.PluginManager, settings: Settings, container: Container
) -> dict[Port, Any]:
    offers: dict[Port, dict[str, BackendOffer]] = {port: {} for port in PORTS}
    for _plugin, offer in collect(manager, "balance_backends"):
        offers[offer.port][offer.name] = offer
    chosen = {
        "event_store": settings.event_store,
        "read_model": settings.read_model,
        "authenticator": settings.authenticator,
    }
    built: dict[Any, Any] = {}
    backends: dict[Port, Any] = {}
    for port in PORTS:
        name = chosen[port]
        offer = offers[port].get(name)
        if offer is None:
            available = ", ".join(sorted(offers[port])) or "none"
            raise ConfigError(
                f"unknown {port} backend {name!r} (BALANCE_{port.upper()}); available: {available}"
            )
        # One factory offered for two ports (a backend serving both) builds one instance.
        if offer.factory not in built:
            built[offer.factory] = offer.factory(settings, container)
        backend = built[offer.factory]
        backends[port] = backend
        for service in PORT_SERVICES[port]:
            container.register_instance(service, backend)
        if port == "event_store" and isinstance(backend, SnapshotStore):
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
    manager = make_plugin_manager(BUILTIN_PLUGINS, settings.disabled_plugins, extra_plugins)
    container = Container()
    container.register_instance(Settings, settings)
    backends = _select_backends(manager, settings, container)
    for _ in collect(manager, "balance_services", container=container, settings=settings):
        pass
    for service, instance in (overrides or {}).items():
        container.register_instance(service, instance)
    builder = MediatorBuilder()
    for impl in manager.hook.balance_register.get_hookimpls():  # registration order
        impl.function(Registry(builder, container, impl.plugin_name))
    mediator = builder.build()
    container.register_instance(Mediator, mediator)
    if run_projector is None:
        run_projector = (settings.get("projector") or "inline").lower() != "off"
    return Application(settings, container, mediator, manager, backends, run_projector)
