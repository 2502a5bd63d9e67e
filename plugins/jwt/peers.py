"""The deployment's ``PeerCredentials`` (``core.auth``): HMAC-SHA256 with a key derived from the
JWT secret, which every instance of a deployment already shares to verify its callers' tokens.
The key is derived (not the secret itself), so a message signature is never a token signature."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Final

__all__ = ["SecretPeerCredentials"]

_PURPOSE: Final = b"account-balance peer messages v1"


class SecretPeerCredentials:
    """``secret``: the JWT secret, or what reads it on first use (the local secret is created
    then, not when the application is put together)."""

    def __init__(self, secret: bytes | Callable[[], bytes]) -> None:
        self._secret = secret
        self._key: bytes | None = None

    def sign(self, message: bytes) -> str:
        if self._key is None:
            secret = self._secret if isinstance(self._secret, bytes) else self._secret()
            self._key = hmac.new(secret, _PURPOSE, hashlib.sha256).digest()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)
