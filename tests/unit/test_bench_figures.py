"""How the bench writes its figures: a ratio held against an "at least" target, the warm-up line."""

from __future__ import annotations

from bench.common import at_least_text
from bench.report import warmup_lines


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
