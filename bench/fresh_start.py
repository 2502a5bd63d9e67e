"""13. A fresh node's start: how long a new instance (empty data directory) takes before it
writes, with 10,000 and then 1,000,000 events already in the topic (6 partitions).

For each size, a topic of its own and its stream-heads topic (``<topic>.heads``) are filled
through the product's write path (``bench.store_fill``): a ``KafkaEventStore`` owning every
partition, and the accounts repository on it building accounts of ``start_stream_length``
events (100: the opening, then deposits in one append; ``bench.streams``), 256 at once. Each
append hands the store its state's snapshot, and the partition writers write the events, each
stream's head and each partition's watermark in their own transactions, as a running node does;
that store is then closed. Then, in each round and for each size (in alternating
order), a new ``KafkaEventStore`` on a new, empty data directory starts: it creates nothing
(the topics exist), joins the owners' group, is assigned every partition (it is alone), and
takes each over: ``init_transactions``, the partition's heads loaded into its new local index,
the events after the heads' watermark read, its ownership record. Timed: ``start()`` (which
returns once the group's first assignment is taken over, or after 30 s with the rest still
moving) and the moment every partition is taken over, the figure reported. Counted: the events
the start read. Then the history below the watermark is read in the background; the time until
the index holds every event is reported too (the index is then checked to hold every event).

The start reads the heads (one per account) and the tail after the watermark (nothing here), so
its time should stay flat as the history grows: the target is within 2x from 10,000 to
1,000,000 events.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from bench.backends import Backend, drop_own_names, kafka_mongo
from bench.common import Outcome, Row, Sizes, by_round, median, run_async
from bench.scaling import ScaleSizes, not_measured, on_partitions, ratio, scale_sizes, taken_over
from bench.store_fill import fill_accounts
from core.config import Settings
from plugins.kafka.config import KafkaConfig
from plugins.kafka.store import KafkaEventStore

__all__ = ["run"]

LABEL: Final = "13. fresh-node start, Kafka, 6 partitions"
HISTORY_BOUND: Final = 600.0  # the background read of the history, at most


def _fill(settings: Settings, events: int, length: int) -> dict[str, Any]:
    """``events`` events in the topic, as accounts of ``length`` events each, through the
    store: its writers write the heads."""
    config = KafkaConfig.from_settings(settings)
    seconds = run_async(fill_accounts(config, events // length, length))
    return {"events": events, "fill_s": seconds, "fill_per_s": events / seconds}


async def _history_read(store: KafkaEventStore) -> None:
    deadline = time.monotonic() + HISTORY_BOUND
    while await store.history_pending():
        if time.monotonic() > deadline:
            raise TimeoutError("the history was not read into the index in time")
        await asyncio.sleep(0.1)


async def _fresh_start(settings: Settings, partitions: int, events: int) -> dict[str, float]:
    store = KafkaEventStore(KafkaConfig.from_settings(settings))
    started = time.perf_counter()
    try:
        await store.start()
        start_s = time.perf_counter() - started
        await taken_over(store, partitions)
        ready_s = time.perf_counter() - started
        read_at_start = store.writer.caught_up
        await _history_read(store)
        history_s = time.perf_counter() - started
        count = await store.event_count()
    finally:
        await store.close()
    assert count == events, (count, events)
    return {
        "start_s": start_s,
        "taken_over_s": ready_s,
        "read_at_start": read_at_start,
        "history_s": history_s,
    }


def _measure(own: list[Settings], sizes: Sizes, scale: ScaleSizes, root: Path) -> dict[str, Any]:
    partitions = 6
    figures: dict[str, Any] = {}
    for settings, events in zip(own, scale.start_events, strict=True):
        figures[str(events)] = _fill(settings, events, scale.start_stream_length)
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
        for name in ("start_s", "taken_over_s", "read_at_start", "history_s"):
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
                "reference" if key == small else "within 2x",
                "info" if key == small else ("pass" if median(ratios) <= 2 else "miss"),
                f"start() returned after {own['start_s']:.2f} s, having read "
                f"{own['read_at_start']:,.0f} events (the heads' tail); by round "
                f"{by_round((r[key]['taken_over_s'] for r in figures['rounds']), '{:.2f}')} s; "
                f"the whole history in the index after {own['history_s']:.2f} s; topic and "
                f"heads filled through the store at {own['fill_per_s']:,.0f} events/s",
            )
        )
    return rows
