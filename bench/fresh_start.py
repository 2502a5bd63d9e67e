"""13. A fresh node's start: how long a new instance (empty data directory) takes before it
writes, with 10,000 and then 1,000,000 events already in the topic (6 partitions).

For each size, a topic of its own is filled in-process through the repository (accounts of
``start_stream_length`` events, 100: the opening, then deposits in one append; ``bench.streams``),
64 appends at once, and that process stops. Then, in each round and for each size (in
alternating order), a new ``KafkaEventStore`` on a new, empty data directory starts: it creates
nothing (the topics exist), joins the owners' group, is assigned every partition (it is alone),
and takes each over: ``init_transactions``, then the whole partition read into its new local
index, then its ownership record. Timed: ``start()`` (which returns once the group's first
assignment is taken over, or after 30 s with the rest still moving) and the moment every
partition is taken over, the figure reported. The index is then checked to hold every event.

A fresh node reads the whole history, so this time grows with the topic. A compacted
stream-heads topic (docs/kafka.md) would make it flat; it is not built, and this measure is the
figure that shows the need.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from bench.backends import Backend, drop_own_names, kafka_mongo
from bench.common import (
    Outcome,
    Row,
    Sizes,
    app_on,
    by_round,
    median,
    run_async,
    run_concurrently,
)
from bench.scaling import ScaleSizes, not_measured, on_partitions, ratio, scale_sizes, taken_over
from bench.streams import build_account
from core.config import Settings
from handlers.accounts.repositories import Accounts
from plugins.kafka.config import KafkaConfig
from plugins.kafka.store import KafkaEventStore

__all__ = ["run"]

LABEL: Final = "13. fresh-node start, Kafka, 6 partitions"
FILL_IN_FLIGHT: Final = 64


async def _fill(settings: Settings, events: int, length: int) -> dict[str, Any]:
    """``events`` events in the topic, as accounts of ``length`` events each."""
    async with app_on(settings.data_dir, settings=settings) as application:
        store = application.backends["event_store"]
        accounts = Accounts(store, store)
        jobs = [lambda: build_account(accounts, length) for _ in range(events // length)]
        started = time.perf_counter()
        await run_concurrently(jobs, FILL_IN_FLIGHT)
        seconds = time.perf_counter() - started
        count = await store.event_count()
    assert count == events, (count, events)
    return {"events": count, "fill_s": seconds, "fill_per_s": count / seconds}


async def _fresh_start(settings: Settings, partitions: int, events: int) -> dict[str, float]:
    store = KafkaEventStore(KafkaConfig.from_settings(settings))
    started = time.perf_counter()
    try:
        await store.start()
        start_s = time.perf_counter() - started
        await taken_over(store, partitions)
        ready_s = time.perf_counter() - started
        count = await store.event_count()
    finally:
        await store.close()
    assert count == events, (count, events)
    return {"start_s": start_s, "taken_over_s": ready_s, "events_per_s": events / ready_s}


def _measure(own: list[Settings], sizes: Sizes, scale: ScaleSizes, root: Path) -> dict[str, Any]:
    partitions = 6
    figures: dict[str, Any] = {}
    for settings, events in zip(own, scale.start_events, strict=True):
        figures[str(events)] = run_async(_fill(settings, events, scale.start_stream_length))
    rounds: list[dict[str, dict[str, float]]] = []
    for number in range(sizes.rounds):
        pairs = list(zip(own, scale.start_events, strict=True))
        if number % 2:
            pairs.reverse()
        results = {}
        for settings, events in pairs:
            fresh = replace(settings, data_dir=root / f"fresh-{events}-{number}")
            results[str(events)] = run_async(_fresh_start(fresh, partitions, events))
        rounds.append(results)
    figures["rounds"] = rounds
    for events in scale.start_events:
        key = str(events)
        for name in ("start_s", "taken_over_s", "events_per_s"):
            figures[key][name] = median(r[key][name] for r in rounds)
    return figures


def run(sizes: Sizes, backend: Backend | None = None) -> Outcome:
    backend = backend or kafka_mongo()
    scale = scale_sizes(sizes.quick)
    if backend.missing:
        return Outcome([not_measured(LABEL, "report", backend.missing)], {})
    on_six = on_partitions(backend, 6)
    with tempfile.TemporaryDirectory(prefix="bench-fresh-start-") as tmp:
        root = Path(tmp)
        own = [
            on_six.own_names(f"bench.fresh{events}").settings(root / f"fill-{events}")
            for events in scale.start_events
        ]
        try:
            figures = _measure(own, sizes, scale, root)
        finally:
            for settings in own:
                drop_own_names(settings)
    return Outcome(_rows(figures, scale), figures)


def _rows(figures: dict[str, Any], scale: ScaleSizes) -> list[Row]:
    small, *larger = (str(events) for events in scale.start_events)
    rows = []
    for key in (small, *larger):
        own = figures[key]
        ratios = [
            ratio(r[key]["taken_over_s"], r[small]["taken_over_s"]) for r in figures["rounds"]
        ]
        rows.append(
            Row(
                f"{LABEL}: {int(key):,} events in the topic",
                "" if key == small else f"{figures[small]['taken_over_s']:.2f} s ({int(small):,})",
                f"{own['taken_over_s']:.2f} s to take every partition over",
                f"{median(ratios):.1f}x",
                "reference" if key == small else "info: flat needs a stream-heads topic",
                "info",
                f"start() returned after {own['start_s']:.2f} s; "
                f"{own['events_per_s']:,.0f} events/s read into the index; by round "
                f"{by_round((r[key]['taken_over_s'] for r in figures['rounds']), '{:.2f}')} s; "
                f"topic filled at {own['fill_per_s']:,.0f} events/s",
            )
        )
    return rows
