"""A memory store that holds the appends queued on it until the test releases them, for the
tests of pipelined appends."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from core.eventsourcing.links import Link
from core.records import EventRecord, Snapshot
from plugins.memory.store import MemoryEventStore

__all__ = ["Held", "HeldStore"]


@dataclass
class Held:
    stream_id: str
    expected: int
    events: list[EventRecord]
    link: Link | None
    future: asyncio.Future[list[EventRecord]]


class HeldStore(MemoryEventStore):
    """While ``holding``, a queued append waits in ``queued`` until ``release`` commits it (or
    fails it); reads see only what was released."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.queued: list[Held] = []

    def enqueue(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[EventRecord],
        link: Link | None = None,
        *,
        head: Snapshot | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        if not self.holding:
            return super().enqueue(stream_id, expected_version, events, link, head=head)
        future: asyncio.Future[list[EventRecord]] = asyncio.get_running_loop().create_future()
        self.queued.append(Held(stream_id, expected_version, list(events), link, future))
        return future

    def release(self, failure: BaseException | None = None) -> None:
        """Commit the oldest held append, or fail it with ``failure`` (its link too, as a
        store's writer marks a failed append's link)."""
        held = self.queued.pop(0)
        if failure is not None:
            if held.link is not None:
                held.link.failed = True
            held.future.set_exception(failure)
            return
        done = super().enqueue(held.stream_id, held.expected, held.events, held.link)
        error = done.exception()
        if error is not None:
            held.future.set_exception(error)
        else:
            held.future.set_result(done.result())
