"""Process-wide interpreter settings for the server: the GIL switch interval and the garbage
collector. Both affect the whole process, so only the server's entry points apply them (``balance
serve`` and each ``--workers`` process), never library code or tests.

- **Switch interval.** The SQLite writer and reader threads release the GIL around every statement
  and then wait for the event-loop thread to give it back, which a busy thread does only every
  switch interval (Python's default 5 ms): under load each hand-off costs up to that much latency.
  ``BALANCE_SWITCH_INTERVAL``, in seconds (default 0.0005); "0" leaves Python's default.
- **Garbage collector.** Python's cyclic collector runs its full (oldest-generation) pass over
  every tracked object, and with the app loaded that pass took up to 73 ms, 14 times in a 25 s
  load test: every request in flight waited for it, which made most of the p99. After start-up
  the server freezes the objects it has built (modules, the app, the container), so the full pass
  no longer walks them, and raises the youngest generation's threshold so that short-lived
  request objects are collected in fewer, larger passes. Measured under the deposit load: p99
  110 ms → 46 ms, full passes 14 → 1. ``BALANCE_GC_THRESHOLD`` takes three integers ("5000,20,100"
  by default); "default" keeps Python's own thresholds and freezes nothing.
"""

from __future__ import annotations

import gc
import sys
from typing import Final

from core.config import ConfigError, Settings

__all__ = [
    "DEFAULT_GC_THRESHOLD",
    "DEFAULT_SWITCH_INTERVAL",
    "apply_runtime",
    "freeze_startup_objects",
    "gc_threshold",
    "set_gc_threshold",
    "set_switch_interval",
    "switch_interval",
]

DEFAULT_SWITCH_INTERVAL: Final = 0.0005
DEFAULT_GC_THRESHOLD: Final = (5000, 20, 100)


def switch_interval(settings: Settings) -> float | None:
    """The interval in seconds, or None for Python's default."""
    text = settings.get("switch_interval")
    try:
        seconds = DEFAULT_SWITCH_INTERVAL if text is None or not text.strip() else float(text)
    except ValueError:
        raise ConfigError(
            f"BALANCE_SWITCH_INTERVAL must be a number of seconds, not {text!r}"
        ) from None
    if not seconds >= 0:  # also refuses NaN
        raise ConfigError(f"BALANCE_SWITCH_INTERVAL must not be negative: {text!r}")
    return seconds or None


def gc_threshold(settings: Settings) -> tuple[int, int, int] | None:
    """The collector's three thresholds, or None to leave Python's."""
    text = (settings.get("gc_threshold") or "").strip()
    if not text:
        return DEFAULT_GC_THRESHOLD
    if text.lower() == "default":
        return None
    parts = text.split(",")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ConfigError(
            f'BALANCE_GC_THRESHOLD must be three positive integers such as "5000,20,100" '
            f'or "default", not {text!r}'
        )
    return values[0], values[1], values[2]


def set_switch_interval(settings: Settings) -> float:
    """Apply ``switch_interval(settings)``; the interval in effect."""
    seconds = switch_interval(settings)
    if seconds is not None:
        sys.setswitchinterval(seconds)
    return sys.getswitchinterval()


def set_gc_threshold(settings: Settings) -> bool:
    """Apply ``gc_threshold(settings)``; whether the server should also freeze its start-up
    objects (not when Python's defaults were asked for)."""
    threshold = gc_threshold(settings)
    if threshold is None:
        return False
    gc.set_threshold(*threshold)
    return True


def freeze_startup_objects() -> None:
    """Collect once, then move every object alive now out of the collector's passes: call it
    when the app is built and before it serves."""
    gc.collect()
    gc.freeze()


def apply_runtime(settings: Settings) -> bool:
    """Both settings at once (what every entry point applies); whether to freeze the start-up
    objects once the app is built (``freeze_startup_objects``)."""
    set_switch_interval(settings)
    return set_gc_threshold(settings)
