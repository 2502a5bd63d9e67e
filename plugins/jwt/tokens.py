"""Minting tokens with the local secret, for ``balance token``, demos and tests.

Only the HMAC key source can mint: with a public key or a JWKS URL the signing key belongs to the
identity provider, not to this service.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Final

import jwt

from core.config import ConfigError, Settings
from plugins.jwt.config import DEFAULT_ALGORITHMS, JwtConfig

__all__ = ["DEFAULT_SCOPES", "mint_token"]

DEFAULT_SCOPES: Final = ("accounts:read", "accounts:write")


def mint_token(
    settings: Settings,
    sub: str,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    roles: Iterable[str] = (),
    ttl: timedelta | float = timedelta(hours=1),
    **claims: Any,
) -> str:
    """A token for ``sub`` signed with the configured (or generated) secret, carrying the
    configured issuer and audience so that this service accepts it. ``claims`` are added last."""
    config = JwtConfig.from_settings(settings)
    if config.source != "secret":
        raise ConfigError(
            f"tokens can only be minted with a shared secret; the {config.source} key source "
            "verifies tokens that an identity provider signs"
        )
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": sub,
        "iat": now,
        "exp": now + int(seconds),
        "jti": secrets.token_hex(8),
        "scope": " ".join(scopes),
    }
    role_list = list(roles)
    if role_list:
        payload["roles"] = role_list
    if config.issuer:
        payload["iss"] = config.issuer
    if config.audience:
        payload["aud"] = config.audience[0]
    payload.update(claims)
    algorithm = (config.algorithms or DEFAULT_ALGORITHMS["secret"])[0]
    return jwt.encode(payload, config.secret_bytes(), algorithm=algorithm)
