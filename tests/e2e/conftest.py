"""End-to-end over HTTP: the real app (``create_app(bootstrap(...))``) on the memory backends, with
the real JWT authenticator and real tokens minted with the generated local secret."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.bootstrap import Application, bootstrap
from core.config import Settings
from handlers.accounts.clock import Clock
from plugins.jwt.tokens import mint_token
from tests.support import FakeClock, settings_for

TELLER = "teller-1"
ROOT = Path(__file__).resolve().parents[2]


def e2e_settings(data_dir: Path, backend: str = "memory", **values: str) -> Settings:
    return settings_for(backend, data_dir, authenticator="jwt", **values)


@dataclass
class Api:
    """The client, the application behind it, and tokens minted for named users."""

    client: AsyncTestClient[Any]
    application: Application
    settings: Settings
    clock: FakeClock
    _tokens: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = field(default_factory=dict)

    def token(
        self,
        sub: str,
        scopes: Iterable[str] = ("accounts:read", "accounts:write"),
        roles: Iterable[str] = (),
    ) -> str:
        key = (sub, tuple(scopes), tuple(roles))
        if key not in self._tokens:
            self._tokens[key] = mint_token(self.settings, sub, key[1], key[2])
        return self._tokens[key]

    def auth(self, sub: str, **kwargs: Any) -> dict[str, str]:
        if sub == TELLER:
            kwargs.setdefault("roles", ("teller",))
        return {"Authorization": f"Bearer {self.token(sub, **kwargs)}"}

    async def call(
        self,
        method: str,
        path: str,
        as_: str | None = "alice",
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        sent = dict(self.auth(as_) if as_ is not None else {})
        sent.update(headers or {})
        return await self.client.request(method, path, json=json, headers=sent, **kwargs)

    async def open(
        self, as_: str = "alice", currency: str = "EUR", deposit: str | None = None, **body: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"currency": currency, **body}
        if deposit is not None:
            payload["initial_deposit"] = deposit
        response = await self.call("POST", "/accounts", as_, json=payload)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def move(
        self, kind: str, account: str, amount: Any, as_: str = "alice", **kwargs: Any
    ) -> httpx.Response:
        path = f"/accounts/{account}/{kind}"
        return await self.call("POST", path, as_, json={"amount": amount}, **kwargs)

    async def account(
        self, account: str, as_: str = "alice", min_version: int = 0
    ) -> httpx.Response:
        return await self.call("GET", f"/accounts/{account}?min_version={min_version}", as_)


AppFactory = Callable[..., Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_api(tmp_path: Path, clock: FakeClock) -> AppFactory:
    """Build an ``Api`` with extra settings, overrides or plugins; use as an async context."""

    @asynccontextmanager
    async def build(
        backend: str = "memory",
        values: Mapping[str, str] | None = None,
        overrides: Mapping[type[Any], object] | None = None,
        extra_plugins: Mapping[str, object] | None = None,
    ) -> AsyncIterator[Api]:
        settings = e2e_settings(tmp_path / backend, backend, **dict(values or {}))
        application = bootstrap(
            settings,
            overrides={Clock: clock, **dict(overrides or {})},
            extra_plugins=extra_plugins,
        )
        async with AsyncTestClient(create_app(application)) as client:
            yield Api(client, application, settings, clock)

    return build


@pytest.fixture
async def api(make_api: AppFactory) -> AsyncIterator[Api]:
    async with make_api() as built:
        yield built


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem response of ``status`` and type ``/problems/<slug>``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    assert body["type"] == f"/problems/{slug}", body
    assert body["status"] == status
    assert body["title"]
    assert "instance" in body
    return body


# ---- the app behind uvicorn in this process ----


@asynccontextmanager
async def served(application: Application, within: float = 180.0) -> AsyncIterator[str]:
    """The app behind uvicorn on a free local port, on this event loop; yields its URL.
    ``within`` bounds the start and the stop (against hangs only)."""
    config = uvicorn.Config(
        create_app(application), host="127.0.0.1", port=0, lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + within
    while not (server.started or serving.done()):
        assert time.monotonic() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.05)
    if serving.done():
        serving.result()
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, within)


# ---- a real `balance serve` process ----


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no BALANCE_* from the caller, so the embedded defaults apply, and a
    ``balance`` command that runs this checkout with this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "balance"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m api.cli "$@"\n')
    shim.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("BALANCE_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        BALANCE_DATA_DIR=str(tmp_path / "data"),
        HOME=str(tmp_path),
    )
    return env


@contextmanager
def start_server(
    command: list[str], env: dict[str, str], cwd: Path, log_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``command`` (a ``balance serve``) on a free port, once /health/ready answers 200; stopped
    with SIGTERM (killed if it hangs) at the end. Its output goes to ``log_path``."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    pytest.fail(f"balance serve exited: {log_path.read_text()}")
                try:
                    with urllib.request.urlopen(f"{base}/health/ready", timeout=1) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"balance serve not ready: {log_path.read_text()}")
                time.sleep(0.1)
            yield process, base
        finally:
            if process.poll() is None:
                stop(process)


@pytest.fixture
def server(environment: dict[str, str], tmp_path: Path) -> Iterator[str]:
    log = tmp_path / "server.log"
    with start_server(["balance", "serve"], environment, tmp_path, log) as (_process, base):
        yield base
