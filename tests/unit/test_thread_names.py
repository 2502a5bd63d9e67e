"""Native thread names: what ``top -H`` and /proc show for the server's threads."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from core.threads import MAX_NATIVE_NAME, name_this_thread, native_name


@pytest.mark.parametrize(
    ("python_name", "native"),
    [
        ("sqlite-writer:events.db", "sqlite-w:events"),
        ("sqlite-checkpoints:views.db", "sqlite-c:views"),
        ("sqlite-reader:events.db_0", "sqlite-r:events"),
        ("kafka-tailer:balance.events", "kafka-t:balance"),
        ("kafka-writer:3:balance.events", "kafka-w:3:balan"),
        ("MainThread", "MainThread"),
    ],
)
def test_a_native_name_is_the_short_form_of_the_python_name(python_name: str, native: str) -> None:
    assert native_name(python_name) == native


def test_a_native_name_never_exceeds_the_kernels_limit_even_mid_character() -> None:
    name = native_name("sqlite-writer:" + "é" * 20)
    assert len(name.encode("utf-8")) <= MAX_NATIVE_NAME
    assert name.startswith("sqlite-w:é")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="native names are set on Linux")
def test_a_thread_that_names_itself_is_shown_under_that_name_by_the_kernel() -> None:
    seen: list[str] = []

    def run() -> None:
        name_this_thread()
        comm = Path(f"/proc/self/task/{threading.get_native_id()}/comm")
        seen.append(comm.read_text().strip())

    thread = threading.Thread(target=run, name="sqlite-writer:events.db")
    thread.start()
    thread.join()
    assert seen == ["sqlite-w:events"]
