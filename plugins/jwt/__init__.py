"""Bearer JWT authentication: HS256 with a shared secret, or RS256/ES256 with a PEM public key or
a JWKS URL. Register ``plugins.jwt.plugin`` with the plugin manager."""

from plugins.jwt.authenticator import JwtAuthenticator
from plugins.jwt.config import JwtConfig
from plugins.jwt.tokens import mint_token

__all__ = ["JwtAuthenticator", "JwtConfig", "mint_token"]
