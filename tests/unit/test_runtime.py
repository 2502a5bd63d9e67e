"""The server's process-wide settings: read and checked from the settings, applied by serve."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from api.runtime import (
    DEFAULT_GC_THRESHOLD,
    freeze_startup_objects,
    gc_threshold,
    set_gc_threshold,
    set_switch_interval,
    switch_interval,
)
from core.config import ConfigError, Settings


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    interval, threshold = sys.getswitchinterval(), gc.get_threshold()
    yield
    sys.setswitchinterval(interval)
    gc.set_threshold(*threshold)
    gc.unfreeze()


def settings(**values: str) -> Settings:
    return Settings(values=values)


def test_defaults_are_half_a_millisecond_and_the_tuned_thresholds() -> None:
    assert switch_interval(settings()) == 0.0005
    assert gc_threshold(settings()) == DEFAULT_GC_THRESHOLD


def test_values_are_read_and_zero_or_default_keep_pythons() -> None:
    assert switch_interval(settings(switch_interval="0.002")) == 0.002
    assert switch_interval(settings(switch_interval="0")) is None
    assert gc_threshold(settings(gc_threshold=" 700, 10,10 ")) == (700, 10, 10)
    assert gc_threshold(settings(gc_threshold="Default")) is None


@pytest.mark.parametrize("text", ["fast", "-1", "nan"])
def test_a_bad_switch_interval_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="BALANCE_SWITCH_INTERVAL"):
        switch_interval(settings(switch_interval=text))


@pytest.mark.parametrize("text", ["5000", "5000,20", "a,b,c", "5000,0,100", "1,2,3,4"])
def test_a_bad_gc_threshold_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="BALANCE_GC_THRESHOLD"):
        gc_threshold(settings(gc_threshold=text))


def test_applying_sets_the_interpreter() -> None:
    assert set_switch_interval(settings(switch_interval="0.003")) == pytest.approx(0.003)
    assert set_gc_threshold(settings(gc_threshold="1234,5,6")) is True
    assert gc.get_threshold() == (1234, 5, 6)
    before = gc.get_threshold()
    assert set_gc_threshold(settings(gc_threshold="default")) is False
    assert gc.get_threshold() == before


def test_freezing_moves_live_objects_out_of_the_collector() -> None:
    gc.unfreeze()
    keep = [object() for _ in range(100)], {"x": [1, 2]}
    freeze_startup_objects()
    assert gc.get_freeze_count() > 0
    assert keep
