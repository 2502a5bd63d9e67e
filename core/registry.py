"""What plugins hand to the host: backend offers, and a registry for mediator contributions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from core.config import Settings
from core.container import Container
from core.mediator_builder import MediatorBuilder

__all__ = ["PORTS", "BackendOffer", "Port", "Registry"]

Port = Literal["event_store", "read_model", "authenticator"]
PORTS: Final[tuple[Port, ...]] = ("event_store", "read_model", "authenticator")


@dataclass(frozen=True, slots=True)
class BackendOffer:
    """A backend for ``port`` under ``name``; ``factory(settings, container)`` builds it once,
    and only when configuration selects it."""

    port: Port
    name: str
    factory: Callable[[Settings, Container], Any]


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
