"""The ``jwt`` authenticator backend. Register this module with the plugin manager."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Final

from core.auth import PeerCredentials
from core.config import Setting, Settings
from core.container import Container
from core.hookspecs import hookimpl
from core.registry import BackendOffer
from plugins.jwt.authenticator import JwtAuthenticator
from plugins.jwt.config import SETTINGS, JwtConfig
from plugins.jwt.peers import SecretPeerCredentials

__all__ = [
    "NAME",
    "balance_backends",
    "balance_cli_commands",
    "balance_services",
    "balance_settings",
    "plugin",
]

NAME: Final = "jwt"


def _authenticator(settings: Settings, container: Container) -> JwtAuthenticator:
    return JwtAuthenticator(JwtConfig.from_settings(settings))


@hookimpl
def balance_backends() -> list[BackendOffer]:
    return [BackendOffer(port="authenticator", name=NAME, factory=_authenticator)]


@hookimpl
def balance_services(container: Container, settings: Settings) -> None:
    """With a JWT secret, the instances of a deployment share a key: their messages to each
    other are signed with one derived from it. With a public key or a JWKS there is none."""
    if settings.authenticator != NAME:
        return
    config = JwtConfig.from_settings(settings)
    if config.source == "secret":
        container.register_instance(PeerCredentials, SecretPeerCredentials(config.secret_bytes))


@hookimpl
def balance_settings() -> tuple[Setting, ...]:
    return SETTINGS


@hookimpl
def balance_cli_commands() -> list[object]:
    from plugins.jwt.cli import token  # click, only for the command line

    return [token]


plugin: Final[ModuleType] = sys.modules[__name__]
