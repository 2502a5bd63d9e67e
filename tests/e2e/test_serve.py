"""``balance serve`` as a process: the key it verifies tokens with, a rebuild refused while it
projects, and a graceful stop on SIGTERM (exit status 0, the shutdown in its log)."""

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


def test_rebuild_is_refused_while_the_server_projects(served: Served) -> None:
    result = served.balance("projections", "rebuild")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot rebuild the read model" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_stops_the_server_gracefully_with_status_0(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=60) == 0
    messages = [record["message"] for record in served.records()]
    assert "Application shutdown complete." in messages
    assert messages[-1] == "balance serve stopped"
    # the rebuild that the live server refused runs once it has stopped
    rebuilt = served.balance("projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
