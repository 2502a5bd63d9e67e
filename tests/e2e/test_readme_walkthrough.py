"""The README's curl walkthrough, run as written against a real server.

``balance serve`` starts in a subprocess on a free port with its own data directory; the block
(fenced as ``sh walkthrough``) runs in bash with ``balance`` on the PATH. It is read from
README.md, or from docs/api.md while the README does not have it yet.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```sh walkthrough\n(.*?)^```", re.S | re.M)


def walkthrough() -> str:
    for source in (ROOT / "README.md", ROOT / "docs" / "api.md"):
        if source.is_file() and (found := BLOCK.search(source.read_text())):
            return found.group(1)
    raise AssertionError("no ```sh walkthrough block in README.md or docs/api.md")


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
