"""``scripts/serve`` installs only what serving needs: the extras of the backends that
``BALANCE_EVENT_STORE`` and ``BALANCE_READ_MODEL`` select, never ``test`` or ``bench``."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _backend_extras(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BALANCE_")}
    environment.update(env)
    result = subprocess.run(
        ["bash", "-c", "source scripts/lib/venv.sh && backend_extras"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("env", "extras"),
    [
        ({}, ""),
        ({"BALANCE_EVENT_STORE": "sqlite", "BALANCE_READ_MODEL": "sqlite"}, ""),
        ({"BALANCE_EVENT_STORE": "kafka"}, "kafka"),
        ({"BALANCE_READ_MODEL": "mongo"}, "mongo"),
        ({"BALANCE_EVENT_STORE": "kafka", "BALANCE_READ_MODEL": "mongo"}, "kafka,mongo"),
        ({"BALANCE_EVENT_STORE": "memory", "BALANCE_READ_MODEL": "mongo"}, "mongo"),
    ],
)
def test_serve_installs_the_extras_of_the_selected_backends(
    env: dict[str, str], extras: str
) -> None:
    assert _backend_extras(**env) == extras


def test_serve_installs_no_test_or_bench_extra() -> None:
    serve = (ROOT / "scripts/serve").read_text()
    assert 'ensure_venv "$(backend_extras)"' in serve
    assert "test" not in serve.replace("scripts/test", "")
    assert "bench" not in serve


def test_the_default_install_has_no_backend_driver() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("[")[0].split("=")[0] for d in project["dependencies"]}
    assert not names & {"confluent-kafka", "beanie", "pymongo"}
    extras = project["optional-dependencies"]
    assert any(d.startswith("confluent-kafka") for d in extras["kafka"])
    assert any(d.startswith("beanie") for d in extras["mongo"])
    # The suite runs every backend.
    assert "account-balance[kafka,mongo]" in extras["test"]
