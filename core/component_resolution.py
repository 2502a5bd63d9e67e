"""Checks what plugins register, and turns each registration into its component: an instance
as given, or what its factory builds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

from core.errors import DuplicateHandlerError
from core.pipeline import ExceptionRegistration, Provider, Registration
from core.pipeline_folding import Bound, ExceptionBound

__all__ = [
    "check_optional_type",
    "check_type",
    "one_each",
    "resolve",
    "resolve_bound",
    "resolve_exceptions",
]

H = TypeVar("H")


def check_type(value: object, base: type[Any], name: str) -> None:
    if not (isinstance(value, type) and issubclass(value, base)):
        raise TypeError(f"{name} must be a subclass of {base.__qualname__}, got {value!r}")


def check_optional_type(request_type: object, base: type[Any]) -> None:
    if request_type is not None:
        check_type(request_type, base, "request_type")


def resolve(provider: Provider[H], plugin: str, method: str) -> H:
    # A class is always a factory; anything else that already has the method is the component.
    component: object
    if not isinstance(provider, type) and hasattr(provider, method):
        component = provider
    elif callable(provider):
        try:
            component = provider()
        except Exception as exc:
            exc.add_note(f"while building {provider!r}, registered by plugin {plugin!r}")
            raise
    else:
        raise TypeError(f"plugin {plugin!r} registered {provider!r}: no {method}() method")
    if not callable(getattr(component, method, None)):
        raise TypeError(f"plugin {plugin!r} registered {component!r}: no {method}() method")
    return cast(H, component)


def one_each(registrations: Sequence[Registration[H]], method: str) -> dict[type[Any], H]:
    by_type: dict[type[Any], list[Registration[H]]] = {}
    for registration in registrations:
        by_type.setdefault(cast(type[Any], registration.message_type), []).append(registration)
    for request_type, found in by_type.items():
        if len(found) > 1:
            raise DuplicateHandlerError(request_type, [r.plugin for r in found])
    return {t: resolve(found[0].provider, found[0].plugin, method) for t, found in by_type.items()}


def resolve_bound(registrations: Sequence[Registration[H]], method: str) -> Bound[H]:
    return [(r.message_type, resolve(r.provider, r.plugin, method)) for r in registrations]


def resolve_exceptions(
    registrations: Sequence[ExceptionRegistration[H]], method: str
) -> ExceptionBound[H]:
    return [
        (r.exception_type, r.request_type, resolve(r.provider, r.plugin, method))
        for r in registrations
    ]
