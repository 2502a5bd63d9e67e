"""What the event loop queues for the writer thread, and how the thread answers it.

Each request carries an ``asyncio`` future of the loop that queued it. The thread decides an
outcome (``Outcome``: the future, ok, the result or the exception) and hands a list of them to
the loop with ``call_soon``; ``settle`` sets them there."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.eventsourcing.links import Link
from core.records import EventRecord, Snapshot
from plugins.kafka.errors import kafka_unavailable

__all__ = [
    "Append",
    "Batch",
    "Item",
    "Outcome",
    "SaveSnapshot",
    "Stop",
    "drained",
    "failed",
    "gather",
    "refuse",
]


@dataclass(slots=True)
class Append:
    stream_id: str
    expected: int
    records: Sequence[EventRecord]
    future: asyncio.Future[list[EventRecord]]
    deadline: float  # time.monotonic()
    link: Link | None = None  # queued on top of another append (core.eventsourcing.links)
    head: Snapshot | None = None  # the aggregate's state after the append (the stream's head)


@dataclass(slots=True)
class SaveSnapshot:
    snapshot: Snapshot
    future: asyncio.Future[None]


@dataclass(slots=True)
class Stop:
    future: asyncio.Future[None]


Item = Append | SaveSnapshot | Stop
Outcome = tuple[asyncio.Future[Any], bool, Any]


def refuse(
    items: Sequence[Append | SaveSnapshot], message: str, error: BaseException
) -> list[Outcome]:
    failure = kafka_unavailable(message, error)
    return failed(items, failure)


def failed(items: Sequence[Append | SaveSnapshot], failure: BaseException) -> list[Outcome]:
    """The items' outcomes: ``failure``; an append's chain breaks (links.py)."""
    for item in items:
        if isinstance(item, Append) and item.link is not None:
            item.link.failed = True
    return [(item.future, False, failure) for item in items]


def drained(items: queue.SimpleQueue[Item], failure: BaseException) -> list[Outcome]:
    """Empties the queue of a writer that stopped: ``failure`` for every request, but a stop."""
    outcomes: list[Outcome] = []
    while True:
        try:
            item = items.get_nowait()
        except queue.Empty:
            return outcomes
        if isinstance(item, Stop):
            outcomes.append((item.future, True, None))
        else:
            outcomes += failed([item], failure)


@dataclass(slots=True)
class Batch:
    """What the writer takes from its queue at once: the requests in order, split by kind, and
    the ``Stop`` that came with them, if any (nothing after it is taken)."""

    items: list[Append | SaveSnapshot] = field(default_factory=list)
    appends: list[Append] = field(default_factory=list)
    snapshots: list[SaveSnapshot] = field(default_factory=list)
    stop: Stop | None = None


def gather(first: Item, items: queue.SimpleQueue[Item], max_appends: int) -> Batch:
    """``first`` and whatever is queued behind it, up to ``max_appends`` appends or a ``Stop``."""
    batch = Batch()
    item = first
    while True:
        if isinstance(item, Stop):
            batch.stop = item
            return batch
        batch.items.append(item)
        if isinstance(item, Append):
            batch.appends.append(item)
        else:
            batch.snapshots.append(item)
        if len(batch.appends) >= max_appends:
            return batch
        try:
            item = items.get_nowait()
        except queue.Empty:
            return batch
