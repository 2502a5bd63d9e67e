"""Two worker processes on one SQLite store: every answer is right, whichever worker serves it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port


def _call(base: str, method: str, path: str, token: str, body: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_two_workers_never_answer_from_a_stale_state(
    environment: dict[str, str],
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = subprocess.run(
        ["balance", "token", "--sub", "alice"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        ["balance", "serve", "--port", str(port), "--workers", "2"],
        env=environment,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health/ready", timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "server.log").read_text())
                time.sleep(0.2)
        status, account = _call(base, "POST", "/accounts", token, {"currency": "EUR"})
        assert status == 201
        # Each deposit is followed at once by a withdrawal of the same amount: on connections
        # that land on either worker, every one must see the deposit before it.
        for _ in range(30):
            status, _ = _call(
                base, "POST", f"/accounts/{account['id']}/deposits", token, {"amount": "5.00"}
            )
            assert status == 201
            status, body = _call(
                base, "POST", f"/accounts/{account['id']}/withdrawals", token, {"amount": "5.00"}
            )
            assert status == 201, body
        status, view = _call(base, "GET", f"/accounts/{account['id']}?min_version=61", token)
        assert (status, view["balance"], view["version"]) == (200, "0.00", 61)
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
