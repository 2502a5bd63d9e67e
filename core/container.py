"""A typed face on the punq container: services by type, backends as singletons."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import punq

__all__ = ["Container"]

T = TypeVar("T")


class Container:
    def __init__(self) -> None:
        self._punq = punq.Container()

    def register_instance(self, service: type[T], instance: T) -> None:
        self._punq.register(service, instance=instance)

    def register_singleton(self, service: type[T], factory: Callable[..., T]) -> None:
        """Built on first resolve, then shared. ``factory``'s parameters are injected by type."""
        self._punq.register(service, factory=factory, scope=punq.Scope.singleton)

    def register_transient(self, service: type[T], factory: Callable[..., T] | None = None) -> None:
        if factory is None:
            self._punq.register(service)
        else:
            self._punq.register(service, factory=factory)

    def resolve(self, service: type[T]) -> T:
        return self._punq.resolve(service)

    def has(self, service: type[T]) -> bool:
        """Whether ``service`` is registered (resolving it, so a singleton is built now)."""
        try:
            self._punq.resolve(service)
        except punq.MissingDependencyError:
            return False
        return True

    def build(self, cls: type[T]) -> T:
        """The registered ``cls`` if there is one; otherwise a new ``cls`` whose constructor
        arguments are resolved from the container."""
        try:
            return self._punq.resolve(cls)
        except punq.MissingDependencyError:
            return self._punq.instantiate(cls)
