"""The writes of a rebuild into its new generation: one in flight at a time, and what is
projected meanwhile goes out in the next one.

A rebuild reads, projects and writes at once (``handlers.accounts.rebuild``): the batches
projected while a write runs wait, and go out together once it is done. The slower the writes,
the larger they get, and the fewer hand-overs between the event loop and the build's thread (or
round trips to a server) each event costs.
"""

from __future__ import annotations

import asyncio
import contextlib

from core.ports import EventBatch, EventSubscription
from handlers.accounts.generations import GenerationBuild
from handlers.accounts.projection import PROJECTION, project_all
from handlers.accounts.readmodel import ViewChange

__all__ = ["RebuildWrites"]


class RebuildWrites:
    """The write in flight into the new generation, and the batches projected while it runs.
    ``applied`` counts the events written and committed."""

    def __init__(self, build: GenerationBuild, subscription: EventSubscription) -> None:
        self._build = build
        self._subscription = subscription
        self.applied = 0
        self._writing: asyncio.Future[None] | None = None
        self._written: list[EventBatch] = []  # the batches of the write in flight
        self._changes: list[ViewChange] = []  # projected, waiting for the next write
        self._waiting: list[EventBatch] = []
        self.waiting_events = 0

    def project(self, batch: EventBatch) -> None:
        self._changes += project_all(batch.events)
        self._waiting.append(batch)
        self.waiting_events += len(batch.events)

    @property
    def running(self) -> bool:
        return self._writing is not None and not self._writing.done()

    def start(self) -> None:
        """Write what waits; the write before must be finished."""
        if not self._waiting:
            return
        checkpoint = max(batch.checkpoint for batch in self._waiting)
        write = self._build.apply(PROJECTION, self._changes, checkpoint)
        self._writing = asyncio.ensure_future(write)
        self._written, self._waiting, self._changes = self._waiting, [], []
        self.waiting_events = 0

    async def finish(self) -> int:
        """Wait for the write in flight and commit its batches; returns their events (0 when
        none was in flight)."""
        writing, self._writing = self._writing, None
        if writing is None:
            return 0
        await writing
        events = 0
        for batch in self._written:
            await self._subscription.commit(batch)
            events += len(batch.events)
        self._written = []
        self.applied += events
        return events

    async def cancel(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing
