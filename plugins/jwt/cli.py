"""``balance token``: print a token signed with the local secret, for trying the API by hand and
for tests. Only the ``secret`` source (a shared HS256 secret) can sign; with a public key or a
JWKS endpoint, tokens come from the identity provider."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Final

import click

from core.config import ConfigError, load_settings
from plugins.jwt.config import JwtConfig
from plugins.jwt.tokens import DEFAULT_SCOPES, mint_token

__all__ = ["parse_ttl", "token"]

_TTL: Final = re.compile(r"(\d+)\s*([smhd]?)")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``1h`` or ``7d``."""
    match = _TTL.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise click.BadParameter(f"{text!r} is not a duration such as 90s, 15m, 1h or 7d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@click.command()
@click.option("--sub", required=True, help="The subject (the account owner's id).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="Scopes, repeated or space-separated [accounts:read accounts:write].",
)
@click.option("--role", "roles", multiple=True, help="Roles, e.g. teller (repeatable).")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 90s, 15m, 1h, 7d.")
def token(sub: str, scopes: Sequence[str], roles: Sequence[str], ttl: str) -> None:
    """Print a token signed with the local secret (BALANCE_JWT_SECRET or the generated one)."""
    words = [word for scope in scopes for word in scope.split()] or list(DEFAULT_SCOPES)
    lifetime = parse_ttl(ttl)
    try:
        settings = load_settings()
        config = JwtConfig.from_settings(settings)
        # Loaded first, so that the note below can say whether this command created it.
        secret = config.signing_secret() if config.source == "secret" else None
        minted = mint_token(settings, sub, words, roles, lifetime)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    click.echo(minted)
    if secret is not None:
        # On stderr, so that $(balance token ...) captures the token alone.
        note = f"balance token: signed with {secret.where}"
        if secret.created:
            note += (
                " (created now: a server that uses another BALANCE_DATA_DIR, or "
                "BALANCE_JWT_SECRET, answers 401 to this token)"
            )
        click.echo(note, err=True)
