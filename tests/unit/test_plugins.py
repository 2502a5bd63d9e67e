"""The plugin system at start-up: backend selection, disabling by name, duplicate handlers,
``collect``, constructor injection into plugin handlers, and backends built once."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from api.bootstrap import Application
from core.config import ConfigError, Settings
from core.container import Container
from core.errors import DuplicateHandlerError
from core.hookspecs import hookimpl
from core.messages import Request
from core.plugins import collect, make_plugin_manager
from core.ports import EventStore
from core.registry import BackendOffer, PortSpec, Registry
from handlers.accounts.messages import OpenAccount
from handlers.accounts.readmodel import AccountReadModel
from tests import support
from tests.support import settings_for


def build(
    settings: Settings, overrides: dict[type[Any], object] | None = None, **plugins: object
) -> Application:
    """The test app on ``settings``, with the named plugins added."""
    return support.build(settings, extra_plugins=plugins, overrides=overrides)


def available(error: ConfigError) -> set[str]:
    listed = re.search(r"available: (.*)$", str(error))
    assert listed is not None, str(error)
    return set(listed.group(1).split(", "))


# --- backend selection --------------------------------------------------------------------------


def test_unknown_backend_fails_at_start_up_listing_the_available_names(tmp_path: Path) -> None:
    settings = replace(settings_for("memory", tmp_path), event_store="nope")
    with pytest.raises(ConfigError, match=r"unknown event_store backend 'nope'") as caught:
        build(settings)
    assert "BALANCE_EVENT_STORE" in str(caught.value)
    assert {"memory", "sqlite"} <= available(caught.value)


def test_unknown_authenticator_lists_the_plugin_offered_ones(tmp_path: Path) -> None:
    settings = replace(settings_for("memory", tmp_path), authenticator="nope")
    with pytest.raises(ConfigError, match="unknown authenticator backend 'nope'") as caught:
        build(settings)
    assert "fixed" in available(caught.value)  # offered by the test plugin in tests.support


def test_a_disabled_builtin_plugin_is_not_loaded(tmp_path: Path) -> None:
    settings = replace(settings_for("memory", tmp_path), disabled_plugins=frozenset({"memory"}))
    with pytest.raises(ConfigError, match="unknown event_store backend 'memory'") as caught:
        build(settings)
    assert "memory" not in available(caught.value)
    assert "sqlite" in available(caught.value)

    # What is left still works.
    app = build(replace(settings, event_store="sqlite", read_model="sqlite"))
    assert app.plugins.get_plugin("memory") is None
    assert app.plugins.is_blocked("memory")


def test_plugins_given_in_code_can_be_disabled_by_name_too(tmp_path: Path) -> None:
    settings = replace(settings_for("memory", tmp_path), disabled_plugins=frozenset({"test-auth"}))
    with pytest.raises(ConfigError, match="unknown authenticator backend 'fixed'"):
        build(settings)


# --- duplicate handlers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping(Request[str]):
    pass


class Greeting:
    def __init__(self, text: str) -> None:
        self.text = text


class PingHandler:
    built = 0

    def __init__(self, greeting: Greeting) -> None:
        type(self).built += 1
        self._greeting = greeting

    async def handle(self, request: Ping) -> str:
        return self._greeting.text


class EchoHandler:
    async def handle(self, request: Any) -> str:
        return "echo"


class Handles:
    """A plugin that registers one handler, given as a class or an instance."""

    def __init__(self, request_type: type[Any], handler: Any) -> None:
        self.request_type = request_type
        self.handler = handler

    @hookimpl
    def balance_register(self, registry: Registry) -> None:
        registry.handler(self.request_type, self.handler)


def test_two_plugins_handling_one_request_type_fail_naming_both(tmp_path: Path) -> None:
    first, second = Handles(Ping, EchoHandler()), Handles(Ping, EchoHandler())
    with pytest.raises(DuplicateHandlerError) as caught:
        build(settings_for("memory", tmp_path), first=first, second=second)
    assert caught.value.request_type is Ping
    assert caught.value.plugins == ("first", "second")
    assert "'first'" in str(caught.value)
    assert "'second'" in str(caught.value)


def test_a_plugin_cannot_take_over_a_builtin_request(tmp_path: Path) -> None:
    with pytest.raises(DuplicateHandlerError) as caught:
        build(settings_for("memory", tmp_path), rival=Handles(OpenAccount, EchoHandler()))
    assert caught.value.plugins == ("accounts", "rival")
    assert "OpenAccount" in str(caught.value)


# --- collect ------------------------------------------------------------------------------------


class Routes:
    def __init__(self, *routes: str) -> None:
        self.routes = list(routes)

    @hookimpl
    def balance_routes(self) -> list[str] | None:
        return self.routes or None


class Services:
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    # Takes fewer arguments than the spec: pluggy, and collect, pass only what is named.
    @hookimpl
    def balance_services(self, settings: Settings) -> str:
        self.seen.append(settings.event_store)
        return "done"


def test_collect_keeps_plugin_names_and_registration_order() -> None:
    manager = make_plugin_manager(
        {},
        extra={"a": Routes("a1", "a2"), "b": Routes(), "c": Routes("c1")},
        entry_points=False,
    )
    # Lists are flattened, None is dropped, and each result keeps the name of who gave it.
    assert collect(manager, "balance_routes") == [("a", "a1"), ("a", "a2"), ("c", "c1")]


def test_collect_passes_each_plugin_only_the_arguments_it_takes() -> None:
    seen: list[str] = []
    manager = make_plugin_manager({}, extra={"s": Services(seen)}, entry_points=False)
    results = collect(manager, "balance_services", container=Container(), settings=Settings())
    assert results == [("s", "done")]
    assert seen == ["sqlite"]


# --- constructor injection ----------------------------------------------------------------------


class Greeter:
    """A plugin with a service and a class handler that needs it."""

    @hookimpl
    def balance_services(self, container: Container) -> None:
        container.register_instance(Greeting, Greeting("hello"))

    @hookimpl
    def balance_register(self, registry: Registry) -> None:
        registry.handler(Ping, PingHandler)


async def test_a_plugin_class_handler_gets_its_dependencies_from_the_container(
    tmp_path: Path,
) -> None:
    PingHandler.built = 0
    app = build(settings_for("memory", tmp_path), greeter=Greeter())
    assert await app.mediator.send(Ping()) == "hello"
    assert await app.mediator.send(Ping()) == "hello"
    assert PingHandler.built == 1  # built once, at start-up, and shared


async def test_overrides_replace_a_plugin_service(tmp_path: Path) -> None:
    app = build(
        settings_for("memory", tmp_path),
        overrides={Greeting: Greeting("bonjour")},
        greeter=Greeter(),
    )
    assert await app.mediator.send(Ping()) == "bonjour"


# --- backends are singletons --------------------------------------------------------------------


class Both:
    """One object serving two ports, as a database backend may."""


class OffersBoth:
    def __init__(self) -> None:
        self.built = 0

    def both(self, settings: Settings, container: Container) -> Both:
        self.built += 1
        return Both()

    def unused(self, settings: Settings, container: Container) -> Both:
        raise AssertionError("a backend that is not selected must not be built")

    @hookimpl
    def balance_ports(self) -> list[PortSpec]:
        # The accounts plugin, which declares this port, is disabled below.
        return [PortSpec("read_model", (AccountReadModel,), "both")]

    @hookimpl
    def balance_backends(self) -> list[BackendOffer]:
        return [
            BackendOffer("event_store", "both", self.both),
            BackendOffer("read_model", "both", self.both),
            BackendOffer("event_store", "unused", self.unused),
        ]


def test_one_factory_offered_for_two_ports_builds_one_backend(tmp_path: Path) -> None:
    plugin = OffersBoth()
    settings = replace(
        settings_for("memory", tmp_path),
        event_store="both",
        read_model="both",
        disabled_plugins=frozenset({"accounts"}),  # its services would use a real store
    )
    app = build(settings, both=plugin)
    assert plugin.built == 1
    backend = app.backends["event_store"]
    assert isinstance(backend, Both)
    assert app.backends["read_model"] is backend
    # Typed as object: each port's service type is a different Protocol.
    as_store: object = app.container.resolve(EventStore)
    as_read_model: object = app.container.resolve(AccountReadModel)
    assert as_store is backend
    assert as_read_model is backend


def test_selected_backends_resolve_to_the_same_object(tmp_path: Path) -> None:
    app = build(settings_for("memory", tmp_path))
    store = app.container.resolve(EventStore)
    assert app.container.resolve(EventStore) is store
    assert store is app.backends["event_store"]
    assert app.container.resolve(AccountReadModel) is app.backends["read_model"]
