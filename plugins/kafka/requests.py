"""What the event loop queues for the writer thread, and how the thread answers it.

Each request carries an ``asyncio`` future of the loop that queued it. The thread decides an
outcome (``Outcome``: the future, ok, the result or the exception) and hands a list of them to
the loop with ``call_soon``; ``settle`` sets them there."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.eventsourcing.links import Link
from core.records import EventRecord, Snapshot
from plugins.kafka.errors import kafka_unavailable

__all__ = ["Append", "Item", "Outcome", "SaveSnapshot", "Stop", "drained", "failed", "refuse"]


@dataclass(slots=True)
class Append:
    stream_id: str
    expected: int
    records: Sequence[EventRecord]
    future: asyncio.Future[list[EventRecord]]
    deadline: float  # time.monotonic()
    link: Link | None = None  # queued on top of another append (core.eventsourcing.links)


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
