"""How the bench writes its figures: a ratio held against an "at least" target, the warm-up line,
a server's CPU per request, the baseline's own rounds."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from bench.common import at_least_text
from bench.http import _baseline_rounds_note, _cpu_note
from bench.report import warmup_lines
from bench.servers import cpu_times


def test_a_ratio_just_under_its_target_never_reads_as_the_target() -> None:
    assert at_least_text(0.4999) == "0.49"
    assert at_least_text(0.5) == "0.50"
    assert at_least_text(0.5549) == "0.55"


def test_the_report_says_which_servers_were_warmed_up_and_when_that_failed() -> None:
    figures = {"label": "Kafka + Mongo", "seconds": 60.0, "wall_s": 71.4, "deposits": 351_234}
    warmed = {"kafka_mongo": figures}
    (line, blank) = warmup_lines(warmed)
    assert "Kafka + Mongo servers were warmed up: 60 s" in line
    assert "(351,234; 71 s with its set-up" in line
    assert blank == ""
    assert warmup_lines({}) == []
    assert "failed: TimeoutError()" in warmup_lines({"error": "TimeoutError()"})[0]


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_times_tell_the_main_thread_from_the_whole_process() -> None:
    assert threading.current_thread() is threading.main_thread()
    pid = os.getpid()
    before = cpu_times(pid)
    assert before is not None
    _spin(0.2)  # on the main thread: both figures grow
    helper = threading.Thread(target=_spin, args=(0.3,))
    helper.start()
    helper.join()  # on another thread: only the process's figure grows
    after = cpu_times(pid)
    assert after is not None
    used = after - before
    assert 0.15 <= used.loop < 0.45
    assert used.process >= used.loop + 0.25


def test_cpu_note_gives_the_loop_ratio_to_the_baseline() -> None:
    baseline = {"loop_cpu_us": 120.0, "process_cpu_us": 125.0}
    ours = {"loop_cpu_us": 200.0, "process_cpu_us": 310.0}
    assert _cpu_note(baseline) == "CPU per request: event loop 120 µs, whole process 125 µs"
    assert _cpu_note(ours, baseline) == (
        "CPU per request: event loop 200 µs, whole process 310 µs (baseline's loop 120 µs: 0.60)"
    )
    assert _cpu_note({"per_s": 1.0}, baseline) == ""


def test_the_baseline_row_gives_its_own_rounds_in_run_order() -> None:
    rounds = [
        {"baseline": {"per_s": 5823.4, "p99_ms": 77.52}, "embedded": {"per_s": 1.0, "p99_ms": 1.0}},
        {"baseline": {"per_s": 7599.0, "p99_ms": 20.2}, "embedded": {"per_s": 2.0, "p99_ms": 2.0}},
    ]
    assert (
        _baseline_rounds_note(rounds) == "req/s by round 5,823 / 7,599; p99 by round 77.5 / 20.2 ms"
    )
