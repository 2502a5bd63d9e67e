"""The README's curl walkthrough, run as written against a real server.

``balance serve`` starts in a subprocess on a free port with its own data directory; the block
(fenced as ``sh walkthrough``) runs in bash with ``balance`` on the PATH. It is read from
README.md, or from docs/api.md while the README does not have it yet.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```sh walkthrough\n(.*?)^```", re.S | re.M)


def walkthrough() -> str:
    for source in (ROOT / "README.md", ROOT / "docs" / "api.md"):
        if source.is_file() and (found := BLOCK.search(source.read_text())):
            return found.group(1)
    raise AssertionError("no ```sh walkthrough block in README.md or docs/api.md")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    port = _free_port()
    log = log_path.open("wb")
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
            process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def server(environment: dict[str, str], tmp_path: Path) -> Iterator[str]:
    log = tmp_path / "server.log"
    with start_server(["balance", "serve"], environment, tmp_path, log) as (_process, base):
        yield base


def test_the_walkthrough_runs_and_ends_with_the_expected_balances(
    server: str, environment: dict[str, str], tmp_path: Path
) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        cwd=tmp_path,
        env={**environment, "BASE": server},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-2:] == ["300.00", "200.00"], result.stdout
    assert '"type":"/problems/insufficient-funds"' in result.stdout
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log
