"""The Kafka and MongoDB drivers are optional extras: the plugins load without them, the
embedded default runs without them, and selecting a backend whose driver is missing fails at
start-up (and in ``balance config``) with a ``ConfigError`` that names the extra to install.

Nothing is uninstalled: each check runs in a subprocess whose import system refuses the
driver's modules, as if they were not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

KAFKA = ("confluent_kafka",)
MONGO = ("beanie", "pymongo", "bson")
ROOT = Path(__file__).resolve().parents[2]

# Runs first in the subprocess: any import of a blocked top-level package fails as a missing
# module does.
PRELUDE = """
import sys

class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Missing())
"""


def _python(
    code: str, blocked: Iterable[str], tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BALANCE_")}
    environment.update(BALANCE_DATA_DIR=str(tmp_path), **env)
    script = f"BLOCKED = {tuple(blocked)!r}\n{PRELUDE}\n{code}"
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_block_makes_a_driver_missing(tmp_path: Path) -> None:
    result = _python("import confluent_kafka", KAFKA, tmp_path)
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'confluent_kafka'" in result.stderr


def test_the_embedded_default_runs_without_any_driver(tmp_path: Path) -> None:
    code = """
import asyncio, json
from api.bootstrap import bootstrap
from core.config import Settings

async def main():
    app = bootstrap(Settings())
    await app.start()
    ready = [await b.ready() for b in app.backends.values() if hasattr(b, "ready")]
    await app.close()
    print(json.dumps({
        "ready": ready,
        "plugins": sorted(m for m in sys.modules if m.endswith((".kafka.plugin", ".mongo.plugin"))),
        "drivers": sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED),
    }))

asyncio.run(main())
"""
    result = _python(code, KAFKA + MONGO, tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["ready"]
    assert all(answer["ready"])
    # The two plugins are loaded, their drivers are not.
    assert answer["plugins"] == ["plugins.kafka.plugin", "plugins.mongo.plugin"]
    assert answer["drivers"] == []


@pytest.mark.parametrize(
    ("blocked", "env", "extra"),
    [
        pytest.param(
            KAFKA,
            {"BALANCE_EVENT_STORE": "kafka", "BALANCE_KAFKA_BOOTSTRAP": "127.0.0.1:9"},
            "kafka",
            id="kafka",
        ),
        pytest.param(
            MONGO,
            {"BALANCE_READ_MODEL": "mongo", "BALANCE_MONGO_URL": "mongodb://127.0.0.1:9/"},
            "mongo",
            id="mongo",
        ),
    ],
)
def test_a_selected_backend_without_its_driver_is_a_config_error_naming_the_extra(
    tmp_path: Path, blocked: tuple[str, ...], env: dict[str, str], extra: str
) -> None:
    install = f"pip install 'account-balance[{extra}]'"
    code = """
from api.bootstrap import bootstrap
from core.config import ConfigError
try:
    bootstrap()
except ConfigError as error:
    print(type(error).__name__, error)
"""
    started = _python(code, blocked, tmp_path, **env)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("ConfigError ")
    assert install in started.stdout

    checked = _python("from api.cli import main; main(['config'])", blocked, tmp_path, **env)
    assert checked.returncode == 1
    assert install in checked.stderr
    assert "Traceback" not in checked.stderr
