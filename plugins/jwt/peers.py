"""The deployment's ``PeerCredentials`` (``core.auth``): HMAC-SHA256 with a key derived from the
JWT secret, which every instance of a deployment already shares to verify its callers' tokens.
The key is derived (not the secret itself), so a message signature is never a token signature."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["SecretPeerCredentials"]

_PURPOSE: Final = b"account-balance peer messages v1"


class SecretPeerCredentials:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _PURPOSE, hashlib.sha256).digest()

    def sign(self, message: bytes) -> str:
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)
