"""Where a server's threads spent an attack: CPU time and run-queue waits, read from /proc.

``/proc/<pid>/task/<tid>/schedstat`` holds each thread's time on a CPU and its time runnable but
waiting for one, in nanoseconds; ``comm`` its native name (``core.threads``). A thread of the
bench samples them every 10 ms during the attack. Two figures come out:

- per thread name, the CPU time and the run-queue wait over the attack (``totals``);
- for the event loop (the main thread, whose id is the process id), how it spent the moments when
  the slowest requests were in flight (``loop_during``): running, waiting for a core, or neither,
  which is waiting for the GIL held by another thread, or for work.

Linux only; elsewhere the sampler records nothing and the figures are empty.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from types import TracebackType

__all__ = ["LoopShare", "Sample", "ThreadSampler", "ThreadTimes", "loop_during", "totals"]

# tid -> (native name, ns on a CPU, ns waiting for one)
Sample = tuple[float, dict[int, tuple[str, int, int]]]


@dataclass(frozen=True, slots=True)
class ThreadTimes:
    name: str
    threads: int
    cpu_s: float
    waited_s: float


@dataclass(frozen=True, slots=True)
class LoopShare:
    """Shares of ``seconds`` of wall time: on a CPU, runnable but waiting for one, neither."""

    seconds: float
    running: float
    waiting_for_core: float
    blocked: float


def read_sample(pid: int) -> Sample:
    now = time.time()
    threads: dict[int, tuple[str, int, int]] = {}
    tasks = Path(f"/proc/{pid}/task")
    try:
        tids = [int(entry) for entry in os.listdir(tasks)]
    except OSError:
        return now, threads
    for tid in tids:
        try:
            name = (tasks / str(tid) / "comm").read_text().strip()
            running, waiting, _ = (tasks / str(tid) / "schedstat").read_text().split()
        except (OSError, ValueError):
            continue  # the thread ended between the listing and the read
        threads[tid] = (name, int(running), int(waiting))
    return now, threads


class ThreadSampler:
    """Samples ``pid``'s threads every ``period`` seconds while the ``with`` block runs."""

    def __init__(self, pid: int, period: float = 0.01) -> None:
        self.pid = pid
        self._period = period
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-thread-sampler", daemon=True)

    def __enter__(self) -> ThreadSampler:
        if Path(f"/proc/{self.pid}/task").is_dir():
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append(read_sample(self.pid))
            if self._stop.wait(self._period):
                self.samples.append(read_sample(self.pid))
                return


def totals(samples: Sequence[Sample], main: tuple[int, str] | None = None) -> list[ThreadTimes]:
    """CPU and run-queue wait per thread name between the first and the last sample, the
    busiest first. A thread that started after the first sample counts from zero. ``main``
    (thread id, label) names one thread apart: the main thread's native name is the process's,
    which threads that never named themselves share."""
    if len(samples) < 2:
        return []
    first, last = samples[0][1], samples[-1][1]
    by_name: dict[str, list[float]] = {}
    for tid, (native, running, waiting) in last.items():
        name = main[1] if main is not None and tid == main[0] else native
        _, running_before, waiting_before = first.get(tid, (name, 0, 0))
        entry = by_name.setdefault(name, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += (running - running_before) / 1e9
        entry[2] += (waiting - waiting_before) / 1e9
    rows = [ThreadTimes(name, int(n), cpu, waited) for name, (n, cpu, waited) in by_name.items()]
    return sorted(rows, key=lambda row: row.cpu_s, reverse=True)


def merged(windows: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of ``(start, end)`` intervals, as disjoint intervals in order."""
    union: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if union and start <= union[-1][1]:
            union[-1] = (union[-1][0], max(union[-1][1], end))
        else:
            union.append((start, end))
    return union


def loop_during(
    samples: Sequence[Sample], pid: int, windows: Iterable[tuple[float, float]]
) -> LoopShare:
    """How the main thread spent the sampling intervals that lie within ``windows`` (wall-clock
    seconds): each interval counts whole when its midpoint is inside the windows' union."""
    union = merged(windows)
    seconds = running = waiting = 0.0
    for (t0, before), (t1, after) in pairwise(samples):
        middle = (t0 + t1) / 2
        if pid not in before or pid not in after:
            continue
        if not any(start <= middle <= end for start, end in union):
            continue
        seconds += t1 - t0
        running += (after[pid][1] - before[pid][1]) / 1e9
        waiting += (after[pid][2] - before[pid][2]) / 1e9
    if seconds <= 0:
        return LoopShare(0.0, 0.0, 0.0, 0.0)
    running_share = min(running / seconds, 1.0)
    waiting_share = min(waiting / seconds, 1.0 - running_share)
    return LoopShare(seconds, running_share, waiting_share, 1.0 - running_share - waiting_share)
