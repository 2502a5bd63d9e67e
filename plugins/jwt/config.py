"""The JWT plugin's configuration, read from ``Settings`` (``BALANCE_JWT_*``), and the local
signing secret generated for runs that configure none.

Exactly one key source is used, in this order: ``BALANCE_JWT_JWKS_URL``, then
``BALANCE_JWT_PUBLIC_KEY``, then ``BALANCE_JWT_SECRET``, then a secret generated into the data
directory. The accepted algorithms follow from that source (or ``BALANCE_JWT_ALGORITHMS``), and are
never taken from a token.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, NamedTuple

from core.config import ConfigError, Settings, Unset, declare

__all__ = [
    "DEFAULT_ALGORITHMS",
    "MIN_SECRET_BYTES",
    "SECRET_FILE",
    "JwtConfig",
    "KeySource",
    "SETTINGS",
    "SigningSecret",
    "local_secret",
    "read_local_secret",
]

KeySource = Literal["jwks", "public_key", "secret"]

SECRET_FILE: Final = "jwt-secret"
# RFC 7518 §3.2: an HMAC key at least as long as the hash output.
MIN_SECRET_BYTES: Final = 32
HMAC_ALGORITHMS: Final = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEFAULT_ALGORITHMS: Final[dict[KeySource, tuple[str, ...]]] = {
    "secret": ("HS256",),
    "jwks": ("RS256", "ES256"),
    # For a PEM key the default follows the key's type (see the authenticator).
    "public_key": (),
}


SETTINGS: Final = declare(
    "jwt",
    secret=Unset(
        "the HS256 secret, at least 32 bytes (masked by `balance config`)",
        "generated into `<data_dir>/jwt-secret` when the server starts",
    ),
    public_key="a PEM public key, as a path or as text",
    jwks_url="a JWKS endpoint",
    issuer=Unset("the required `iss`", "not checked"),
    audience=Unset(
        "the accepted `aud` values, comma-separated (tokens minted locally get the first)",
        "not checked",
    ),
    leeway=("clock skew allowed on `exp`, `nbf`, `iat`, in seconds (0 to 300)", 30.0),
    algorithms=Unset(
        "accepted algorithms, comma-separated",
        "by key source (`HS256` for a secret, `RS256,ES256` for a JWKS, the key's type)",
    ),
    jwks_lifespan=("seconds a fetched key set (and a cached key) is used", 300.0),
    jwks_cooldown=("minimum seconds between refreshes for unknown `kid`s", 30.0),
    jwks_timeout=("seconds to wait for the JWKS endpoint", 5.0),
    cache_seconds=("how long a verified token is remembered, at most", 60.0),
    cache_size=("how many verified tokens are remembered (0: none)", 10000),
)


def _split(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class JwtConfig:
    data_dir: Path
    secret: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: tuple[str, ...] = ()
    leeway: float = 30.0
    # Empty: the default for the key source.
    algorithms: tuple[str, ...] = ()
    jwks_lifespan: float = 300.0
    jwks_cooldown: float = 30.0
    jwks_timeout: float = 5.0
    # Verified tokens are remembered (until they expire, at most this long) so that a client
    # sending the same token again costs a dict lookup, not a signature check.
    cache_seconds: float = 60.0
    cache_size: int = 10_000

    @classmethod
    def from_settings(cls, settings: Settings) -> JwtConfig:
        config = cls(
            data_dir=settings.data_dir,
            secret=settings.get("jwt_secret") or None,
            public_key=settings.get("jwt_public_key") or None,
            jwks_url=settings.get("jwt_jwks_url") or None,
            issuer=settings.get("jwt_issuer") or None,
            audience=_split(settings.get("jwt_audience")),
            leeway=settings.get_float("jwt_leeway", 30.0),
            algorithms=_split(settings.get("jwt_algorithms")),
            jwks_lifespan=settings.get_float("jwt_jwks_lifespan", 300.0),
            jwks_cooldown=settings.get_float("jwt_jwks_cooldown", 30.0),
            jwks_timeout=settings.get_float("jwt_jwks_timeout", 5.0),
            cache_seconds=settings.get_float("jwt_cache_seconds", 60.0),
            cache_size=settings.get_int("jwt_cache_size", 10_000),
        )
        config.check()
        return config

    @property
    def source(self) -> KeySource:
        if self.jwks_url:
            return "jwks"
        if self.public_key:
            return "public_key"
        return "secret"

    def check(self) -> None:
        sources = [name for name in ("jwks_url", "public_key", "secret") if getattr(self, name)]
        if len(sources) > 1:
            named = " and ".join(f"BALANCE_JWT_{name.upper()}" for name in sources)
            raise ConfigError(f"{named} are both set; configure exactly one key source")
        if self.leeway < 0 or self.leeway > 300:
            raise ConfigError("BALANCE_JWT_LEEWAY must be between 0 and 300 seconds")
        if self.secret is not None and len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"BALANCE_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long")
        allowed = HMAC_ALGORITHMS if self.source == "secret" else ASYMMETRIC_ALGORITHMS
        for algorithm in self.algorithms:
            if algorithm not in allowed:
                raise ConfigError(
                    f"BALANCE_JWT_ALGORITHMS: {algorithm!r} cannot be used with the "
                    f"{self.source} key source (allowed: {', '.join(sorted(allowed))})"
                )

    def secret_bytes(self) -> bytes:
        """The HMAC key: the configured secret, or the local one (created on first use)."""
        return self.signing_secret().key

    def signing_secret(self) -> SigningSecret:
        """The HMAC key and where it comes from (the local one is created on first use)."""
        if self.secret is not None:
            return SigningSecret(self.secret.encode())
        return _local_secret(self.data_dir)

    def describe_key(self, secret: SigningSecret | None = None) -> str:
        """Where the key that verifies tokens comes from, for logs; ``secret`` is the one
        loaded, if it was (without it, nothing is read or created)."""
        if self.jwks_url:
            return f"the keys of the JWKS at {self.jwks_url}"
        if self.public_key:
            return "the public key in BALANCE_JWT_PUBLIC_KEY"
        if secret is None:
            path = None if self.secret is not None else self.data_dir / SECRET_FILE
            secret = SigningSecret(b"", path)
        return secret.where + (" (created now)" if secret.created else "")


class SigningSecret(NamedTuple):
    key: bytes
    # The local secret's file; None for BALANCE_JWT_SECRET.
    path: Path | None = None
    created: bool = False

    @property
    def where(self) -> str:
        return "BALANCE_JWT_SECRET" if self.path is None else f"the secret in {self.path}"


def local_secret(data_dir: Path) -> bytes:
    """The secret in ``data_dir/jwt-secret``, created (mode 0600) when missing."""
    return _local_secret(data_dir).key


def read_local_secret(data_dir: Path) -> bytes | None:
    """The secret in ``data_dir/jwt-secret``, None when there is none yet."""
    path = data_dir / SECRET_FILE
    try:
        secret = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"{path} holds fewer than {MIN_SECRET_BYTES} bytes; remove it")
    return secret


def _local_secret(data_dir: Path) -> SigningSecret:
    """The file is written under a temporary name and linked into place, so concurrent workers
    either create it or read the complete one that another worker created."""
    path = data_dir / SECRET_FILE
    created = False
    for _ in range(3):
        secret = read_local_secret(data_dir)
        if secret is not None:
            return SigningSecret(secret, path, created)
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(secrets.token_urlsafe(48).encode() + b"\n")
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
                created = True
        finally:
            temporary.unlink(missing_ok=True)
    raise ConfigError(f"could not create the local JWT secret in {path}")
