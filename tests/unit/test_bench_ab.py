"""``python -m bench.ab``: two builds of the app in one process, the variant's ``patch()`` applied
to the second only. Checked on a tiny workload, by what the apps answer, not by the figures."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_ACCEPTED_ON_B = """
from typing import Any

from litestar import Response, post
from litestar.params import FromPath, JSONBody

import handlers.accounts.plugin
from core.http.request import ApiRequest
from handlers.accounts.web import accounts


class Answers202(accounts.AccountController):
    @post("/{account_id:str}/deposits", status_code=202)
    async def deposit(
        self, account_id: FromPath[str], data: JSONBody[accounts.MovementIn], request: ApiRequest
    ) -> Response[Any]:
        return Response({"account": account_id}, status_code=202)


def patch() -> None:
    handlers.accounts.plugin.AccountController = Answers202
"""


def _ab(variant: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bench.ab", str(variant), "--chunk", "64", "--rounds", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def _statuses(output: str) -> dict[int, int]:
    found = re.search(r"statuses (\{.*\})", output)
    assert found is not None, output
    statuses: dict[int, int] = ast.literal_eval(found.group(1))
    return statuses


def test_the_variant_changes_app_b_only(tmp_path: Path) -> None:
    variant = tmp_path / "accepted_on_b.py"
    variant.write_text(_ACCEPTED_ON_B)
    output = _ab(variant)
    # 2 rounds x 64 deposits on each app: A deposits (201), B answers the variant's 202.
    assert _statuses(output) == {201: 128, 202: 128}
    assert "B higher in" in output


def test_the_null_variant_serves_every_deposit_on_both() -> None:
    output = _ab(ROOT / "bench" / "variants" / "null.py")
    assert _statuses(output) == {201: 256}
