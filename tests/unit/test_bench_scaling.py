"""The arithmetic of the scale-out measures' figures (bench/scaling.py): latency percentiles
merged over several wrk runs, the forwarded commands read from an instance's /metrics, the
host's busy cores, the broker's pid, the plot's bars, and the runner's ``--only``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from api.observability import Metrics
from bench.__main__ import MEASURES, _keys
from bench.scaling import (
    HostCpu,
    forwarded_count,
    host_cpu,
    listener_pid_in,
    merged_percentile,
    ratio,
    scale_out_rates,
    scale_out_seconds,
    share,
)


def _quantiles(values: list[float], points: int = 1000) -> list[float]:
    """Evenly spaced nearest-rank quantiles of ``values``, as deposit.lua prints them."""
    ordered = sorted(values)
    return [ordered[max(1, math.ceil(k * len(ordered) / points)) - 1] for k in range(1, points + 1)]


def test_one_run_merged_alone_keeps_its_own_percentiles() -> None:
    latencies = [float(n) for n in range(1, 1001)]
    runs = [(1000, _quantiles(latencies))]
    assert merged_percentile(runs, 50) == 500.0
    assert merged_percentile(runs, 99) == 990.0
    assert merged_percentile(runs, 100) == 1000.0


def test_runs_are_merged_by_their_request_counts_not_one_vote_each() -> None:
    fast = (9_000, [1.0] * 1000)  # 9,000 requests, all at 1 ms
    slow = (1_000, [100.0] * 1000)  # 1,000 requests, all at 100 ms
    assert merged_percentile([fast, slow], 50) == 1.0
    assert merged_percentile([fast, slow], 90) == 1.0
    assert merged_percentile([fast, slow], 91) == 100.0
    # Two runs with the same counts: their union's percentiles.
    low, high = [float(n) for n in range(1, 501)], [float(n) for n in range(501, 1001)]
    union = [(500, _quantiles(low)), (500, _quantiles(high))]
    assert merged_percentile(union, 50) == 500.0
    assert merged_percentile(union, 99) == 990.0


def test_no_requests_has_no_percentile() -> None:
    assert math.isnan(merged_percentile([], 50))
    assert math.isnan(merged_percentile([(0, [1.0, 2.0]), (10, [])], 50))


class _Counts:
    forwarded = 1234
    unreachable = 5


def test_the_forwarded_count_is_read_from_what_an_instance_exports() -> None:
    exposition = Metrics(forwarded=_Counts()).exposition().decode()
    assert forwarded_count(exposition) == 1234
    assert forwarded_count(Metrics().exposition().decode()) == 0


def test_shares_and_ratios_never_divide_by_zero() -> None:
    assert share(1, 4) == 0.25
    assert share(3, 0) == 0.0
    assert ratio(6.0, 2.0) == 3.0
    assert math.isnan(ratio(6.0, 0.0))


def test_busy_cores_come_from_the_host_counters(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 0 50 800 50 0 0 0 30 0\ncpu0 1 2 3 4\n")
    before = host_cpu(stat)
    assert before == HostCpu(busy=150, total=1000)
    stat.write_text("cpu  250 0 100 950 100 0 0 0 30 0\n")
    after = host_cpu(stat)
    # 200 busy ticks of 400: half of the time, so one of two cores.
    assert after.cores_busy_since(before, 2) == 1.0
    assert after.cores_busy_since(after, 2) == 0.0


def test_the_listening_process_is_read_from_ss() -> None:
    line = 'LISTEN 0 50 [::ffff:127.0.0.1]:19392 *:* users:(("java",pid=24074,fd=95))\n'
    assert listener_pid_in(line) == 24074
    assert listener_pid_in("LISTEN 0 50 127.0.0.1:19392 *:*\n") is None
    assert listener_pid_in("") is None


def test_the_plot_shows_each_scale_out_figure_measured() -> None:
    measures = {
        "partitions": {
            "partitions": [1, 6],
            "commit_bound": {"1": {"per_s": 100.0}, "6": {"per_s": 250.0}},
            "cpu_bound": {"1": {"per_s": 400.0}, "6": {"per_s": 300.0}},
        },
        "instances": {
            "rounds": [],
            "1": {"per_s": 10.0},
            "3": {"per_s": 20.0},
            "3-to-owner": {"per_s": 25.0},
        },
        "takeover": {"p50_s": 6.4, "max_s": 7.0, "session_timeout_s": 6.0},
        "fresh_start": {
            "rounds": [],
            "1000000": {"taken_over_s": 50.0},
            "10000": {"taken_over_s": 1.0},
        },
    }
    rates = [(label, value) for label, value, _ in scale_out_rates(measures)]
    assert rates == [
        ("appends, 1 partitions, commit-bound (/s)", 100.0),
        ("appends, 6 partitions, commit-bound (/s)", 250.0),
        ("appends, 1 partitions, CPU-bound (/s)", 400.0),
        ("appends, 6 partitions, CPU-bound (/s)", 300.0),
        ("HTTP, 1 instances (req/s)", 10.0),
        ("HTTP, 3 instances (req/s)", 20.0),
        ("HTTP, 3 instances, to owner (req/s)", 25.0),
    ]
    seconds = [(label, value) for label, value, _ in scale_out_seconds(measures)]
    assert seconds == [
        ("session timeout", 6.0),
        ("take-over p50", 6.4),
        ("take-over max", 7.0),
        ("fresh start, 10,000 events", 1.0),
        ("fresh start, 1,000,000 events", 50.0),
    ]
    assert scale_out_rates({}) == scale_out_seconds({}) == []


def test_only_takes_known_measures_and_refuses_the_others() -> None:
    assert _keys("partitions, takeover") == {"partitions", "takeover"}
    assert set(MEASURES) >= {"partitions", "instances", "takeover", "fresh_start"}
    with pytest.raises(argparse.ArgumentTypeError, match="nonsense"):
        _keys("partitions,nonsense")
    with pytest.raises(argparse.ArgumentTypeError):
        _keys(",")
