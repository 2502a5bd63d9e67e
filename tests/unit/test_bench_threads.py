"""The latency bench's per-thread figures (bench/threads.py): CPU and run-queue waits from
/proc, and how the event loop spent the moments when the slowest requests were in flight."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from bench.threads import Sample, ThreadSampler, loop_during, merged, totals
from bench.vegeta import read_results
from core.threads import name_this_thread

MS = 1_000_000  # ns
ANSWER_BOUND = 30.0  # seconds


def _sample(t: float, **threads: tuple[int, int, int]) -> Sample:
    """``threads``: name -> (tid, ms on a CPU, ms waiting for one)."""
    return t, {tid: (name, run * MS, wait * MS) for name, (tid, run, wait) in threads.items()}


def _all_named(name: str, samples: list[Sample]) -> list[Sample]:
    return [
        (t, {tid: (name, *times[1:]) for tid, times in threads.items()}) for t, threads in samples
    ]


def test_totals_are_per_name_between_the_first_and_the_last_sample() -> None:
    samples = [
        _sample(0.0, main=(1, 100, 10), writer=(2, 5, 0)),
        _sample(1.0, main=(1, 400, 60), writer=(2, 25, 5), reader=(3, 7, 1)),
    ]
    rows = {row.name: row for row in totals(samples)}
    assert rows["main"].cpu_s == pytest.approx(0.3)
    assert rows["main"].waited_s == pytest.approx(0.05)
    assert rows["writer"].cpu_s == pytest.approx(0.02)
    assert rows["reader"].cpu_s == pytest.approx(0.007)  # started after the first sample
    assert [row.name for row in totals(samples)] == ["main", "writer", "reader"]


def test_the_main_thread_is_told_apart_from_unnamed_threads() -> None:
    samples = [
        _sample(0.0, **{"a": (1, 0, 0), "b": (9, 0, 0)}),
        _sample(1.0, **{"a": (1, 5, 0), "b": (9, 2, 0)}),
    ]
    unnamed = [
        (t, {tid: ("python", run, wait) for tid, (_, run, wait) in th.items()}) for t, th in samples
    ]
    rows = {row.name: row.cpu_s for row in totals(unnamed, main=(1, "event loop"))}
    assert rows == {"event loop": pytest.approx(0.005), "python": pytest.approx(0.002)}


def test_threads_of_one_name_are_summed() -> None:
    samples = [
        _sample(0.0, **{"r0": (3, 0, 0), "r1": (4, 0, 0)}),
        _sample(1.0, **{"r0": (3, 2, 0), "r1": (4, 3, 0)}),
    ]
    renamed = [
        (t, {tid: ("reader", run, wait) for tid, (_, run, wait) in th.items()}) for t, th in samples
    ]
    (row,) = totals(renamed)
    assert row.threads == 2
    assert row.cpu_s == pytest.approx(0.005)


def test_overlapping_windows_are_merged() -> None:
    assert merged([(5, 6), (1, 3), (2, 4), (6, 7)]) == [(1, 4), (5, 7)]


def test_the_loop_is_judged_only_in_the_intervals_inside_the_windows() -> None:
    # Four 10 ms intervals: the loop runs the 1st, waits for a core in the 2nd, is blocked in
    # the 3rd, runs half of the 4th; only the 2nd and 3rd lie inside the window.
    samples = [
        _sample(0.00, main=(7, 0, 0)),
        _sample(0.01, main=(7, 10, 0)),
        _sample(0.02, main=(7, 10, 10)),
        _sample(0.03, main=(7, 10, 10)),
        _sample(0.04, main=(7, 15, 10)),
    ]
    share = loop_during(samples, 7, [(0.012, 0.029)])
    assert share.seconds == pytest.approx(0.02)
    assert share.running == pytest.approx(0.0)
    assert share.waiting_for_core == pytest.approx(0.5)
    assert share.blocked == pytest.approx(0.5)
    everything = loop_during(samples, 7, [(0.0, 0.04)])
    assert everything.running == pytest.approx(15 / 40)


def test_no_window_no_share() -> None:
    samples = [_sample(0.0, main=(7, 0, 0)), _sample(1.0, main=(7, 5, 0))]
    assert loop_during(samples, 7, []).seconds == 0


def test_the_slowest_requests_are_given_as_sent_and_answered_instants() -> None:
    second = 1_000_000_000
    rows = [[str(i * second), "201", str((i + 1) * MS), "0", "0", ""] for i in range(200)]
    attack = read_results(rows, offered_per_s=1.0)
    assert attack.slowest(0.01) == [(198.0, 198.199), (199.0, 199.2)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_the_sampler_sees_a_busy_named_thread_spend_cpu() -> None:
    stop = threading.Event()
    spinning = threading.Event()

    def spin() -> None:
        name_this_thread()
        while not stop.is_set():
            sum(range(1000))
            spinning.set()

    thread = threading.Thread(target=spin, name="bench-spin:test")
    thread.start()
    seen = 0.0
    try:
        assert spinning.wait(ANSWER_BOUND)
        deadline = time.monotonic() + ANSWER_BOUND  # against a hang only
        with ThreadSampler(os.getpid(), period=0.005) as sampler:
            while seen <= 0 and time.monotonic() < deadline:
                stop.wait(0.02)
                rows = {row.name: row for row in totals(sampler.samples)}
                seen = rows["bench-s:test"].cpu_s if "bench-s:test" in rows else 0.0
    finally:
        stop.set()
        thread.join()
    assert seen > 0
