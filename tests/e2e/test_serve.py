"""``balance serve`` as a process: the key it verifies tokens with, a rebuild beside it that it
follows, and a graceful stop on SIGTERM (exit status 0, the shutdown in its log)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, start_server


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    base: str
    env: dict[str, str]
    log: Path

    def balance(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BALANCE_")}
    env.update(PYTHONPATH=str(ROOT), BALANCE_DATA_DIR=str(tmp_path / "data"), HOME=str(tmp_path))
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "api.cli", "serve"]
    with start_server(command, env, tmp_path, log) as (process, base):
        yield Served(process, base, env, log)


def test_serve_logs_which_secret_it_verifies_with_and_token_signs_with_it(
    served: Served, tmp_path: Path
) -> None:
    secret_file = tmp_path / "data" / "jwt-secret"
    messages = [record["message"] for record in served.records()]
    assert f"verifying tokens with the secret in {secret_file} (created now)" in messages
    minted = served.balance("token", "--sub", "alice")
    assert minted.returncode == 0, minted.stderr
    assert minted.stderr == f"balance token: signed with the secret in {secret_file}\n"
    request = urllib.request.Request(
        f"{served.base}/accounts", headers={"Authorization": f"Bearer {minted.stdout.strip()}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_a_rebuild_runs_beside_the_server_which_then_serves_the_new_read_model(
    served: Served,
) -> None:
    minted = served.balance("token", "--sub", "alice", "--role", "teller")
    assert minted.returncode == 0, minted.stderr
    headers = {"Authorization": f"Bearer {minted.stdout.strip()}"}

    def call(method: str, path: str, body: object = None) -> dict[str, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{served.base}{path}", data=data, method=method,
            headers={**headers, "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, object] = json.loads(response.read())
            return answer

    account = call("POST", "/accounts", {"currency": "EUR", "initial_deposit": "10.00"})["id"]
    call("POST", f"/accounts/{account}/deposits", {"amount": "5.00"})
    assert call("GET", f"/accounts/{account}?min_version=3")["balance"] == "15.00"

    rebuilt = served.balance("projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout == "rebuilt the read model from 3 events and switched to it\n"
    assert "3/3 events" in rebuilt.stderr  # the progress bar, with its total
    assert (Path(served.env["BALANCE_DATA_DIR"]) / "views.generation").read_text() == "1\n"

    # The server reads the new generation, and its projector writes into it.
    assert call("GET", f"/accounts/{account}")["balance"] == "15.00"
    call("POST", f"/accounts/{account}/deposits", {"amount": "1.00"})
    assert call("GET", f"/accounts/{account}?min_version=4")["balance"] == "16.00"


def test_sigterm_stops_the_server_gracefully_with_status_0(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=60) == 0
    messages = [record["message"] for record in served.records()]
    assert "Application shutdown complete." in messages
    assert messages[-1] == "balance serve stopped"
    # a rebuild runs with the server stopped too
    rebuilt = served.balance("projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
