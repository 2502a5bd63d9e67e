"""Bearer JWT rules over HTTP: every failure is 401 with a WWW-Authenticate challenge, a missing
scope is 403, the accepted algorithms come from configuration only, and JWKS keys rotate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.auth import AuthenticationError
from core.config import ConfigError
from plugins.jwt.authenticator import JwtAuthenticator
from plugins.jwt.config import SECRET_FILE, JwtConfig, local_secret
from plugins.jwt.tokens import mint_token
from tests.e2e.conftest import Api, AppFactory, e2e_settings, problem

ISSUER = "https://issuer.test"
AUDIENCE = "balance-api"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A token signed by hand (PyJWT refuses to make the dangerous ones)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "exp": now + 300, "iat": now, "scope": "accounts:read", **extra}


def invalid_token(response: Any) -> None:
    problem(response, 401, "invalid-token")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="account-balance"')
    assert 'error="invalid_token"' in challenge
    assert "error_description=" in challenge


async def _get(api: Api, token: str | None, header: str | None = None) -> Any:
    headers = {}
    if header is not None:
        headers["Authorization"] = header
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await api.call("GET", "/accounts", None, headers=headers)


# ---- HS256 with the generated local secret ----


async def test_a_valid_token_is_accepted(api: Api) -> None:
    assert (await _get(api, api.token("alice"))).status_code == 200


async def test_missing_token_is_401_with_a_plain_challenge(api: Api) -> None:
    response = await _get(api, None)
    problem(response, 401, "missing-token")
    assert response.headers["www-authenticate"] == 'Bearer realm="account-balance"'
    other_scheme = await _get(api, None, header="Basic YWxpY2U6c2VjcmV0")
    assert other_scheme.headers["www-authenticate"] == 'Bearer realm="account-balance"'


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer a b", "Bearer not-a-jwt", "Bearer a.b.c", "Bearer ...."],
)
async def test_malformed_tokens_are_401_invalid_token(api: Api, header: str) -> None:
    invalid_token(await _get(api, None, header=header))


async def test_expired_token_is_401(api: Api) -> None:
    now = int(time.time())
    token = mint_token(api.settings, "alice", exp=now - 120, iat=now - 600)
    response = await _get(api, token)
    invalid_token(response)
    assert "expired" in response.json()["detail"]


async def test_leeway_accepts_a_token_just_expired(api: Api) -> None:
    now = int(time.time())
    token = mint_token(api.settings, "alice", exp=now - 10, iat=now - 600)
    assert (await _get(api, token)).status_code == 200


async def test_token_not_valid_yet_is_401(api: Api) -> None:
    token = mint_token(api.settings, "alice", nbf=int(time.time()) + 600)
    response = await _get(api, token)
    invalid_token(response)
    assert "not valid yet" in response.json()["detail"]


async def test_bad_signature_is_401(api: Api) -> None:
    token = jwt.encode(_claims(), b"another-secret-of-thirty-two-bytes!!", algorithm="HS256")
    response = await _get(api, token)
    invalid_token(response)
    assert "signature" in response.json()["detail"]
    tampered = api.token("alice")[:-4] + "AAAA"
    invalid_token(await _get(api, tampered))


async def test_alg_none_is_401(api: Api) -> None:
    token = _forge({"alg": "none", "typ": "JWT"}, _claims(), None)
    response = await _get(api, token)
    invalid_token(response)
    assert "algorithm" in response.json()["detail"]


async def test_a_token_without_exp_or_sub_is_401(api: Api) -> None:
    secret = local_secret(api.settings.data_dir)
    no_exp = jwt.encode({"sub": "alice", "scope": "accounts:read"}, secret, algorithm="HS256")
    assert "'exp'" in (await _get(api, no_exp)).json()["detail"]
    no_sub = jwt.encode({"exp": int(time.time()) + 60}, secret, algorithm="HS256")
    invalid_token(await _get(api, no_sub))
    empty_sub = jwt.encode({"sub": "", "exp": int(time.time()) + 60}, secret, algorithm="HS256")
    invalid_token(await _get(api, empty_sub))


async def test_a_hs384_token_is_refused_when_only_hs256_is_configured(api: Api) -> None:
    secret = local_secret(api.settings.data_dir)
    token = jwt.encode(_claims(), secret, algorithm="HS384")
    invalid_token(await _get(api, token))


async def test_missing_scope_is_403_insufficient_scope(api: Api) -> None:
    reader = api.auth("alice", scopes=("accounts:read",))
    writer = api.auth("alice", scopes=("accounts:write",))
    account = (await api.open())["id"]
    # read-only: queries work, commands are refused
    assert (await api.call("GET", "/accounts", None, headers=reader)).status_code == 200
    response = await api.call("POST", "/accounts", None, json={"currency": "EUR"}, headers=reader)
    problem(response, 403, "insufficient-scope")
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="accounts:write"' in challenge
    deposit = await api.call(
        "POST", f"/accounts/{account}/deposits", None, json={"amount": "1"}, headers=reader
    )
    problem(deposit, 403, "insufficient-scope")
    # write-only: commands work, queries are refused
    opened = await api.call("POST", "/accounts", None, json={"currency": "EUR"}, headers=writer)
    assert opened.status_code == 201
    response = await api.call("GET", f"/accounts/{account}", None, headers=writer)
    problem(response, 403, "insufficient-scope")
    assert 'scope="accounts:read"' in response.headers["www-authenticate"]
    nothing = api.auth("alice", scopes=())
    problem(await api.call("GET", "/accounts", None, headers=nothing), 403, "insufficient-scope")


async def test_the_local_secret_is_private_and_reused(api: Api, make_api: AppFactory) -> None:
    path = api.settings.data_dir / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = api.token("alice")
    async with make_api() as again:  # a second app on the same data directory
        assert (await _get(again, token)).status_code == 200


async def test_the_local_secret_is_created_at_start_not_when_the_app_is_built(
    tmp_path: Path,
) -> None:
    config = JwtConfig.from_settings(e2e_settings(tmp_path))
    authenticator = JwtAuthenticator(config)
    assert not (tmp_path / SECRET_FILE).exists()
    assert authenticator.key_description == f"the secret in {tmp_path / SECRET_FILE}"
    await authenticator.start()
    assert authenticator.key_description.endswith("jwt-secret (created now)")
    token = mint_token(e2e_settings(tmp_path), "alice")
    assert (await authenticator.authenticate(token)).subject == "alice"
    # Used before its start, it loads the secret then.
    early = JwtAuthenticator(JwtConfig.from_settings(e2e_settings(tmp_path / "other")))
    other = mint_token(e2e_settings(tmp_path / "other"), "bob")
    assert (await early.authenticate(other)).subject == "bob"
    with pytest.raises(AuthenticationError, match="signature"):
        await early.authenticate(token)  # signed with another data directory's secret


def test_a_short_configured_secret_is_refused(tmp_path: Path) -> None:
    settings = e2e_settings(tmp_path, jwt_secret="too-short")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        mint_token(settings, "alice")


async def test_configured_secret_issuer_and_audience(make_api: AppFactory) -> None:
    values = {"jwt_secret": "s" * 40, "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    async with make_api(values=values) as api:
        good = mint_token(api.settings, "alice")
        assert jwt.decode(good, options={"verify_signature": False})["iss"] == ISSUER
        assert (await _get(api, good)).status_code == 200
        wrong_issuer = mint_token(api.settings, "alice", iss="https://evil.test")
        response = await _get(api, wrong_issuer)
        invalid_token(response)
        assert "issuer" in response.json()["detail"]
        wrong_audience = mint_token(api.settings, "alice", aud="someone-else")
        response = await _get(api, wrong_audience)
        invalid_token(response)
        assert "audience" in response.json()["detail"]
        no_audience = jwt.encode(_claims(iss=ISSUER), b"s" * 40, algorithm="HS256")
        invalid_token(await _get(api, no_audience))


# ---- RS256 / ES256 with a PEM public key ----


def _pem(key: Any) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def test_rs256_with_a_pem_public_key(
    make_api: AppFactory, rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(_pem(rsa_key))
    async with make_api(values={"jwt_public_key": str(key_file)}) as api:
        claims = _claims(scope="accounts:read accounts:write")
        good = jwt.encode(claims, rsa_key, algorithm="RS256")
        assert (await _get(api, good)).status_code == 200
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        invalid_token(await _get(api, jwt.encode(claims, other_key, algorithm="RS256")))
        # algorithm confusion: HS256 "signed" with the public key as the HMAC secret
        confused = _forge({"alg": "HS256", "typ": "JWT"}, claims, _pem(rsa_key))
        response = await _get(api, confused)
        invalid_token(response)
        assert "algorithm" in response.json()["detail"]
        invalid_token(await _get(api, _forge({"alg": "none"}, claims, None)))
        # minting needs a shared secret, which this configuration does not have
        with pytest.raises(ConfigError):
            mint_token(api.settings, "alice")


async def test_es256_with_pem_text(make_api: AppFactory) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    async with make_api(values={"jwt_public_key": _pem(key).decode()}) as api:
        good = jwt.encode(_claims(), key, algorithm="ES256")
        assert (await _get(api, good)).status_code == 200
        rsa_signed = jwt.encode(
            _claims(),
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            algorithm="RS256",
        )
        invalid_token(await _get(api, rsa_signed))


# ---- JWKS ----


class _Jwks:
    """A JWKS endpoint on 127.0.0.1 whose key set the test replaces."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def publish(self, *keys: tuple[str, rsa.RSAPrivateKey]) -> None:
        self.keys = [
            {
                **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key())),
                "kid": kid,
                "alg": "RS256",
                "use": "sig",
            }
            for kid, private in keys
        ]


@pytest.fixture
def jwks() -> Iterator[_Jwks]:
    endpoint = _Jwks()
    endpoint.thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


async def test_jwks_keys_rotate_on_an_unknown_kid(
    make_api: AppFactory, jwks: _Jwks, rsa_key: rsa.RSAPrivateKey
) -> None:
    second = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks.publish(("key-1", rsa_key))
    values = {"jwt_jwks_url": jwks.url, "jwt_jwks_cooldown": "0"}
    async with make_api(values=values) as api:
        first_token = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "key-1"})
        assert (await _get(api, first_token)).status_code == 200
        fetched = jwks.fetches
        # the same kid again: served from the cache, no fetch
        again = jwt.encode(_claims(jti="2"), rsa_key, algorithm="RS256", headers={"kid": "key-1"})
        assert (await _get(api, again)).status_code == 200
        assert jwks.fetches == fetched

        # the identity provider rotates to key-2; a token naming it triggers one refresh
        jwks.publish(("key-1", rsa_key), ("key-2", second))
        rotated = jwt.encode(_claims(), second, algorithm="RS256", headers={"kid": "key-2"})
        assert (await _get(api, rotated)).status_code == 200
        assert jwks.fetches == fetched + 1

        unknown = jwt.encode(_claims(), second, algorithm="RS256", headers={"kid": "key-9"})
        response = await _get(api, unknown)
        invalid_token(response)
        assert "signing key" in response.json()["detail"]
        # a token signed by key-2 but naming key-1 does not verify
        lying = jwt.encode(_claims(), second, algorithm="RS256", headers={"kid": "key-1"})
        invalid_token(await _get(api, lying))
        no_kid = jwt.encode(_claims(), rsa_key, algorithm="RS256")
        invalid_token(await _get(api, no_kid))
        ready = await api.call("GET", "/health/ready", None)
        assert ready.json()["checks"]["authenticator"] is True


async def test_unreachable_jwks_is_503_not_401(make_api: AppFactory, jwks: _Jwks) -> None:
    url = jwks.url
    jwks.server.shutdown()
    jwks.server.server_close()
    values = {"jwt_jwks_url": url, "jwt_jwks_timeout": "0.5"}
    async with make_api(values=values) as api:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": "k"})
        response = await _get(api, token)
        problem(response, 503, "authenticator-unavailable")
        ready = await api.call("GET", "/health/ready", None)
        assert ready.status_code == 503
        assert ready.json()["checks"]["authenticator"] is False
