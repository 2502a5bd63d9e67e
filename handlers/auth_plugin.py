"""The auth plugin: registers the ``Authenticate`` handler (the authenticator itself is a
backend, chosen by ``BALANCE_AUTHENTICATOR``; see ``plugins/jwt``)."""

from __future__ import annotations

from core.hookspecs import hookimpl
from core.registry import Registry
from handlers.auth import Authenticate, AuthenticateHandler

__all__ = ["balance_register"]


@hookimpl
def balance_register(registry: Registry) -> None:
    registry.handler(Authenticate, AuthenticateHandler)
