"""How the bench writes a ratio held against an "at least" target."""

from __future__ import annotations

from bench.common import at_least_text


def test_a_ratio_just_under_its_target_never_reads_as_the_target() -> None:
    assert at_least_text(0.4999) == "0.49"
    assert at_least_text(0.5) == "0.50"
    assert at_least_text(0.5549) == "0.55"
