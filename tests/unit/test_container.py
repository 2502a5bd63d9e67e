"""The container: instances, singletons built once, transients built each time, and ``build``."""

from __future__ import annotations

import pytest

from core.container import Container


class Clock:
    pass


class Store:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock


class Handler:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock


@pytest.fixture
def container() -> Container:
    return Container()


def test_an_instance_is_returned_as_registered(container: Container) -> None:
    clock = Clock()
    container.register_instance(Clock, clock)
    assert container.resolve(Clock) is clock
    assert container.resolve(Clock) is clock


def test_the_last_registration_wins(container: Container) -> None:
    first, second = Clock(), Clock()
    container.register_instance(Clock, first)
    container.register_instance(Clock, second)  # how bootstrap's overrides replace a service
    assert container.resolve(Clock) is second


def test_a_singleton_is_built_once_on_first_resolve(container: Container) -> None:
    built: list[Clock] = []

    def make_clock() -> Clock:
        built.append(Clock())
        return built[-1]

    container.register_singleton(Clock, make_clock)
    assert built == []  # nothing is built at registration
    assert container.resolve(Clock) is container.resolve(Clock)
    assert len(built) == 1


def test_a_singleton_factory_gets_its_parameters_by_type(container: Container) -> None:
    clock = Clock()
    container.register_instance(Clock, clock)
    container.register_singleton(Store, Store)
    store = container.resolve(Store)
    assert store.clock is clock
    assert container.resolve(Store) is store


def test_a_transient_is_new_each_time(container: Container) -> None:
    container.register_instance(Clock, Clock())
    container.register_transient(Store)
    first, second = container.resolve(Store), container.resolve(Store)
    assert first is not second
    assert first.clock is second.clock  # its dependencies keep their own lifetime


def test_a_transient_can_have_a_factory(container: Container) -> None:
    container.register_transient(Clock, lambda: Clock())
    assert container.resolve(Clock) is not container.resolve(Clock)


def test_build_uses_the_registered_instance_when_there_is_one(container: Container) -> None:
    clock = Clock()
    container.register_instance(Clock, clock)
    assert container.build(Clock) is clock


def test_build_constructs_an_unregistered_class_with_injected_dependencies(
    container: Container,
) -> None:
    clock = Clock()
    container.register_instance(Clock, clock)
    container.register_singleton(Store, Store)
    handler = container.build(Handler)
    assert handler.store is container.resolve(Store)
    assert handler.clock is clock
    # Not registered by building: each build is a new object.
    assert container.build(Handler) is not handler
