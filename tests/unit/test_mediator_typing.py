"""mypy --strict accepts the typed use of the mediator in typing_check.py, and rejects misuse."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit import typing_check

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# Self-contained, so that it checks the same whether or not tests/unit is a package.
MISUSE = """\
from dataclasses import dataclass

from core.mediator_builder import MediatorBuilder
from core.messages import Request


@dataclass
class Balance:
    cents: int


class GetBalance(Request[Balance]):
    pass


class Other(Request[int]):
    pass


class GetBalanceHandler:
    async def handle(self, query: GetBalance) -> Balance:
        return Balance(1)


async def misuse() -> None:
    builder = MediatorBuilder()
    builder.add_handler(GetBalance, GetBalanceHandler(), plugin="accounts")
    mediator = builder.build()
    text: str = await mediator.send(GetBalance())  # rejected
    builder.add_handler(Other, GetBalanceHandler(), plugin="accounts")  # rejected
    await mediator.send(Balance(1))  # rejected
"""


def run_mypy(target: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            str(target),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("typing")


def test_mypy_strict_accepts_typed_use_without_casts(mypy_cache: Path) -> None:
    result = run_mypy(HERE / "typing_check.py", mypy_cache)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "cast(" not in (HERE / "typing_check.py").read_text()


def test_mypy_strict_rejects_misuse(mypy_cache: Path) -> None:
    misuse = mypy_cache / "misuse.py"
    misuse.write_text(MISUSE)

    result = run_mypy(misuse, mypy_cache)

    errors = re.findall(r"misuse\.py:(\d+): error: (.*)", result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    rejected = [str(n) for n, line in enumerate(MISUSE.splitlines(), 1) if "# rejected" in line]
    assert [line for line, _ in errors] == rejected, result.stdout
    # A str annotation for a Balance response: mypy infers send's R from the annotation.
    assert 'incompatible type "GetBalance"; expected "Request[str]"' in errors[0][1]
    # A GetBalance handler registered for another request type.
    assert (
        '"add_handler" of "MediatorBuilder" has incompatible type "GetBalanceHandler"'
        in errors[1][1]
    )
    # Something that is not a request.
    assert 'Argument 1 to "send" of "Mediator" has incompatible type "Balance"' in errors[2][1]


async def test_the_checked_example_also_runs() -> None:
    balance = await typing_check.main()

    assert balance == typing_check.Balance("acc-1", 100)
