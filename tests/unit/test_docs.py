"""The repository speaks of the product only: no tracked text file carries a work-log marker
("session 7", "issue 6", a private notes file). The word "session" in its technical senses (a
Kafka session timeout, a pytest session fixture, an HTTP session) is fine."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THIS = Path(__file__).resolve()

_NUMBER = r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b"
DIARY_MARKERS: tuple[re.Pattern[str], ...] = (
    # "session 6", "Sessions 7 to 11", "session 10's last run"
    re.compile(rf"\bsessions?\s+{_NUMBER}", re.I),
    # "last session", "the previous session": a work log's sense, never a technical one
    re.compile(r"\b(?:last|previous|next|earlier)\s+session\b", re.I),
    # "issue 6", "issue #6", "issues 3 and 4" (an upstream "issue FerretDB#4616" names its project)
    re.compile(r"\bissues?\s+#?\d+", re.I),
    # notes kept outside the repository, which nobody who clones it can read
    re.compile(r"\bshared/notes/", re.I),
)

# Directories that are not the project's text even when present in a checkout.
_SKIPPED_DIRS = {".git", ".venv", ".servers", "node_modules", "__pycache__"}


def _tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        # Not a git checkout (an unpacked archive): every file below the root.
        return [
            path
            for path in ROOT.rglob("*")
            if path.is_file() and not _SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts)
        ]
    return [ROOT / name for name in listed.decode().split("\0") if name]


def _text(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:  # listed by git but deleted in the working tree
        return None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def diary_markers(text: str) -> Iterator[tuple[int, str]]:
    """(line number, matched text) for every marker in ``text``."""
    for number, line in enumerate(text.splitlines(), 1):
        for pattern in DIARY_MARKERS:
            for found in pattern.finditer(line):
                yield number, found.group(0)


@pytest.mark.parametrize(
    "line",
    [
        "Pass in every run since session 6.",
        "Sessions 7 to 11 measured where the difference goes.",
        "#### Session 9: the routes' dependency injection",
        "as the last session showed",
        "Issue 6 is marked blocked on the p99 targets.",
        "see issue #12",
        "(see `/work/shared/notes/baselines.md`)",
    ],
)
def test_a_diary_marker_is_found(line: str) -> None:
    assert list(diary_markers(line)), line


@pytest.mark.parametrize(
    "line",
    [
        "Consumers use a 10 s session timeout.",
        "broker.session.timeout.ms=5000",
        '@pytest.fixture(scope="session", autouse=True)',
        "Topics the tests created in this session; deleted at its end.",
        "the session's test databases go at its end",
        "an HTTP session with 64 connections",
        "returned 0 (upstream issue FerretDB#4616)",
        "the token comes from another issuer",
        "(`session.with_transaction`): the batch's writes and the checkpoint",
    ],
)
def test_a_technical_use_of_the_words_is_not_a_marker(line: str) -> None:
    assert not list(diary_markers(line)), line


def test_no_tracked_text_file_carries_a_diary_marker() -> None:
    files = [path for path in _tracked_files() if path.resolve() != THIS]
    assert any(path.name == "README.md" for path in files)  # the listing found the repository
    found = [
        f"{path.relative_to(ROOT)}:{number}: {marker!r}"
        for path in files
        if (text := _text(path)) is not None
        for number, marker in diary_markers(text)
    ]
    assert not found, "work-log markers (speak of the product only):\n" + "\n".join(found)


# ---- docs/architecture.md: one deposit's path ----

ARCHITECTURE = ROOT / "docs" / "architecture.md"
_PATH_STAGES = ("POST", "command", "event", "store", "projection", "GET")


def _deposit_path() -> str:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    start = text.index("## One deposit's path")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_deposit_path_names_at_most_six_files_and_each_exists() -> None:
    named = set(re.findall(r"`([\w./-]+\.py)`", _deposit_path()))
    assert named, "the deposit's path names no file"
    assert len(named) <= 6, sorted(named)
    missing = sorted(name for name in named if not (ROOT / name).is_file())
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_the_deposit_path_goes_through_every_stage_in_order() -> None:
    steps = re.findall(r"^\d+\. \*\*(\w+)\*\*", _deposit_path(), re.M)
    assert tuple(steps) == _PATH_STAGES
