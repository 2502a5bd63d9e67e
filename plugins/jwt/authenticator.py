"""``JwtAuthenticator``: verifies a bearer JWT and names its principal.

Checked: the signature with the configured key and algorithms only (so ``alg: none`` and an HS256
token signed with an RSA public key both fail), ``exp`` (required), ``nbf`` and ``iat`` (each a
JSON number, RFC 7519's NumericDate), and ``iss``/``aud`` when configured, with a small leeway.
The principal is ``sub``, the space-separated ``scope`` claim, and the ``roles`` claim.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from math import isfinite
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from core.auth import AuthenticationError, AuthenticatorUnavailableError, Principal
from core.config import ConfigError
from plugins.jwt.config import DEFAULT_ALGORITHMS, JwtConfig, read_local_secret

__all__ = ["JwtAuthenticator", "check_numeric_dates", "load_public_key"]

log = logging.getLogger(__name__)

_EC_ALGORITHMS: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
# Most specific first: each PyJWT error becomes a reason a client can act on.
_REASONS: Final[tuple[tuple[type[jwt.PyJWTError], str], ...]] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is not meant for this audience"),
    (jwt.InvalidIssuerError, "the token comes from another issuer"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidKeyError, "the token's key is not accepted"),
    (jwt.DecodeError, "the token is malformed"),
)


_NUMERIC_DATES: Final = ("exp", "nbf", "iat")


def load_public_key(value: str) -> Any:
    """A PEM public key given as text or as the path of a file that holds it."""
    if value.lstrip().startswith("-----BEGIN"):
        pem = value.encode()
    else:
        try:
            pem = Path(value).expanduser().read_bytes()
        except OSError as error:
            raise ConfigError(f"BALANCE_JWT_PUBLIC_KEY: cannot read {value}: {error}") from None
    try:
        return serialization.load_pem_public_key(pem)
    except ValueError as error:
        raise ConfigError(f"BALANCE_JWT_PUBLIC_KEY is not a PEM public key: {error}") from None


def _algorithms_for(key: Any) -> tuple[str, ...]:
    if isinstance(key, rsa.RSAPublicKey):
        return ("RS256",)
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
        return (_EC_ALGORITHMS[key.curve.name],)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return ("EdDSA",)
    raise ConfigError(f"BALANCE_JWT_PUBLIC_KEY: unsupported key type {type(key).__name__}")


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the token has no {error.claim!r} claim"
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "the token is not valid"


def _words(value: object, claim: str) -> frozenset[str]:
    """A claim given as a space-separated string or as a list of strings."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise AuthenticationError(f"the {claim!r} claim must be a string or a list of strings")


def check_numeric_dates(claims: dict[str, Any]) -> None:
    """``exp``, ``nbf`` and ``iat`` are NumericDates (RFC 7519): JSON numbers. PyJWT reads them
    with ``int()``, which also takes a numeric string (``"1900000000"``) or ``true``."""
    for claim in _NUMERIC_DATES:
        if claim not in claims:
            continue
        value = claims[claim]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or (isinstance(value, float) and not isfinite(value)):
            raise AuthenticationError(f"the {claim!r} claim must be a number of seconds")


def principal_of(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthenticationError("the 'sub' claim must be a non-empty string")
    return Principal(
        subject, _words(claims.get("scope"), "scope"), _words(claims.get("roles"), "roles")
    )


class JwtAuthenticator:
    """``Authenticator`` and ``Lifecycle`` for bearer JWTs."""

    def __init__(self, config: JwtConfig) -> None:
        self._config = config
        self._jwks: jwt.PyJWKClient | None = None
        self._key: Any = None
        self.key_description = config.describe_key()
        source = config.source
        if source == "jwks":
            assert config.jwks_url is not None
            options: dict[str, Any] = {
                "cache_jwk_set": True,
                "lifespan": max(config.jwks_lifespan, 0.001),
                "timeout": config.jwks_timeout,
            }
            # Newer PyJWT releases allow one refresh for unknown kids per cooldown.
            if "cooldown_duration" in inspect.signature(jwt.PyJWKClient).parameters:
                options["cooldown_duration"] = config.jwks_cooldown
            self._jwks = jwt.PyJWKClient(config.jwks_url, **options)
            algorithms = config.algorithms or DEFAULT_ALGORITHMS["jwks"]
        elif source == "public_key":
            assert config.public_key is not None
            self._key = load_public_key(config.public_key)
            algorithms = config.algorithms or _algorithms_for(self._key)
        else:
            # A missing local secret is created at start (or first use), not here: building the
            # authenticator, as `balance config` does to check the settings, writes nothing.
            if config.secret is not None:
                self._key = config.secret.encode()
            else:
                self._key = read_local_secret(config.data_dir)
            algorithms = config.algorithms or DEFAULT_ALGORITHMS["secret"]
        self.algorithms: tuple[str, ...] = algorithms
        self._algorithm_list = list(algorithms)
        self._audience: list[str] | None = list(config.audience) or None
        required = ["exp", "sub"]
        if config.issuer:
            required.append("iss")
        if config.audience:
            required.append("aud")
        self._options: dict[str, Any] = {"require": required, "verify_aud": bool(config.audience)}
        # kid -> (key, monotonic deadline); the JWKS client keeps the fetched set itself.
        self._jwk_cache: dict[str, tuple[jwt.PyJWK, float]] = {}
        # token -> (principal, wall-clock deadline)
        self._verified: dict[str, tuple[Principal, float]] = {}

    # ---- Lifecycle ----

    def _load_secret(self) -> bytes:
        secret = self._config.signing_secret()
        self._key = secret.key
        self.key_description = self._config.describe_key(secret)
        return secret.key

    async def start(self) -> None:
        if self._key is None and self._jwks is None:
            await asyncio.to_thread(self._load_secret)
        # A token signed with another secret (another BALANCE_DATA_DIR) is refused with a 401;
        # this line says which key this process verifies with.
        log.info("verifying tokens with %s", self.key_description)
        if self._jwks is not None:
            try:
                await asyncio.to_thread(self._jwks.get_signing_keys)
            except jwt.PyJWKClientError as error:
                log.warning("JWKS not reachable at start-up: %s", error)

    async def close(self) -> None:
        self._verified.clear()
        self._jwk_cache.clear()

    async def ready(self) -> bool:
        if self._jwks is None or self._jwk_cache:
            return True
        try:
            await asyncio.to_thread(self._jwks.get_signing_keys)
        except jwt.PyJWKClientError:
            return False
        return True

    # ---- Authenticator ----

    async def authenticate(self, token: str) -> Principal:
        now = time.time()
        known = self._verified.get(token)
        if known is not None:
            if now < known[1]:
                return known[0]
            del self._verified[token]
        key = self._key if self._jwks is None else await self._signing_key(token)
        if key is None:  # used before start
            key = self._load_secret()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithm_list,
                audience=self._audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway,
                options=self._options,  # type: ignore[arg-type]
            )
        except jwt.PyJWTError as error:
            raise AuthenticationError(_reason(error)) from None
        check_numeric_dates(claims)
        principal = principal_of(claims)
        self._remember(token, principal, claims, now)
        return principal

    def _remember(
        self, token: str, principal: Principal, claims: dict[str, Any], now: float
    ) -> None:
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or self._config.cache_size <= 0:
            return
        if len(self._verified) >= self._config.cache_size:
            del self._verified[next(iter(self._verified))]
        # min() before float(): an exp of 10**400 is a valid NumericDate but no float.
        self._verified[token] = (principal, float(min(expires, now + self._config.cache_seconds)))

    async def _signing_key(self, token: str) -> jwt.PyJWK:
        assert self._jwks is not None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as error:
            raise AuthenticationError(_reason(error)) from None
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("the token names no signing key ('kid')")
        now = time.monotonic()
        cached = self._jwk_cache.get(kid)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            # The client refreshes its set for an unknown kid (at most once per cooldown); it
            # blocks on the network, so it runs off the event loop.
            key = await asyncio.to_thread(self._jwks.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as error:
            log.warning("JWKS fetch failed: %s", error)
            raise AuthenticatorUnavailableError("the signing keys cannot be fetched") from None
        except jwt.PyJWKClientError:
            raise AuthenticationError("the token's signing key is not known") from None
        if len(self._jwk_cache) >= 64:
            self._jwk_cache.clear()
        self._jwk_cache[kid] = (key, now + self._config.jwks_lifespan)
        return key
