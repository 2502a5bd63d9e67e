"""What the event loop queues for the writer thread, and how the thread answers it.

Each request carries an ``asyncio`` future of the loop that queued it. The thread decides an
outcome (``Outcome``: the future, ok, the result or the exception) and hands a list of them to
the loop with ``call_soon``; ``settle`` sets them there."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.records import EventRecord, Snapshot
from plugins.kafka.errors import kafka_unavailable

__all__ = ["Append", "Item", "Outcome", "SaveSnapshot", "Stop", "refuse"]


@dataclass(slots=True)
class Append:
    stream_id: str
    expected: int
    records: Sequence[EventRecord]
    future: asyncio.Future[list[EventRecord]]
    deadline: float  # time.monotonic()


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
    return [(item.future, False, failure) for item in items]
