"""How the open-loop bench reads vegeta: its JSON targets, its CSV results, the percentiles."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

from bench.vegeta import Target, percentile, read_results, write_targets


def test_nearest_rank_percentiles_of_a_known_list() -> None:
    ordered = [float(n) for n in range(1, 1001)]  # 1 .. 1000
    assert percentile(ordered, 50) == 500.0
    assert percentile(ordered, 99) == 990.0
    assert percentile(ordered, 99.9) == 999.0
    assert percentile(ordered, 100) == 1000.0
    assert percentile([7.0], 99.9) == 7.0
    assert math.isnan(percentile([], 50))


def test_targets_carry_each_owners_token_and_the_body(tmp_path: Path) -> None:
    path = tmp_path / "targets"
    write_targets(
        path,
        [
            Target("POST", "http://h/accounts/a/deposits", {"Authorization": "Bearer x"}, b"{}"),
            Target("POST", "http://h/accounts/b/deposits", {"Authorization": "Bearer y"}, b"{}"),
        ],
    )
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["header"]["Authorization"] for line in lines] == [["Bearer x"], ["Bearer y"]]
    assert [line["url"] for line in lines] == [
        "http://h/accounts/a/deposits",
        "http://h/accounts/b/deposits",
    ]
    assert base64.b64decode(lines[0]["body"]) == b"{}"


def _row(sent_ns: int, status: int, latency_ns: int, error: str = "") -> list[str]:
    return [
        str(sent_ns),
        str(status),
        str(latency_ns),
        "17",
        "80",
        error,
        "",
        "",
        "0",
        "POST",
        "u",
        "",
    ]


def test_failures_count_errors_and_non_2xx_and_the_span_ends_at_the_last_answer() -> None:
    second = 1_000_000_000
    rows = [
        _row(0, 201, 2_000_000),
        _row(second // 2, 201, 4_000_000),
        _row(second, 503, 1_000_000),
        _row(second, 0, 5 * second, "timeout"),
    ]
    attack = read_results(rows, offered_per_s=4.0)
    assert attack.requests == 4
    assert (attack.successes, attack.failures) == (2, 2)
    assert attack.latencies_ms == [2.0, 4.0, 1.0, 5000.0]
    assert attack.seconds == 6.0  # sent at 0 s, the last answer (a timeout) at 1 s + 5 s
    figures = attack.as_dict()
    assert figures["p50_ms"] == 2.0
    assert figures["max_ms"] == 5000.0
    assert figures["achieved_per_s"] == 2 / 6.0
