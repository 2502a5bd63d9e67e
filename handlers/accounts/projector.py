"""Keeps the read model up to date: reads the store's events after the read model's checkpoint,
turns them into view changes and applies them with the new checkpoint, then publishes
``EventsProjected`` for the batch (live feeds and any subscribing plugin).

On a read model with generations (``handlers.accounts.generations``) the projector follows the
live one: it subscribes from that generation's checkpoint, applies each batch into that
generation only, and once a rebuild has switched it subscribes again from the new generation's
checkpoint. A rebuild runs beside it, into a generation of its own.

The events the projector applied into the old generation after the rebuild's last one are then
applied again into the new one; they are not published again (``PublishedVersions``)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

from core.mediator import Mediator
from core.ports import EventStore, EventSubscription
from core.records import EventRecord
from handlers.accounts.generations import (
    Generations,
    GenerationSwitchedError,
    subscription_group,
)
from handlers.accounts.notifications import EventsProjected
from handlers.accounts.progress import ProjectionProgress
from handlers.accounts.projection import PROJECTION, project_all
from handlers.accounts.readmodel import (
    AccountReadModel,
    ProjectionClaims,
    ViewChange,
)
from handlers.accounts.rebuild import RebuildProgress, rebuild_into_new_generation

__all__ = ["PUBLISHED_STREAMS", "Projector", "PublishedVersions"]

log = logging.getLogger(__name__)

# The streams whose last published version the projector remembers, the most recent ones: what
# a switch makes it apply again is what it applied after the rebuild's last batch, far fewer.
PUBLISHED_STREAMS: Final = 100_000


class PublishedVersions:
    """The last version published of each of the ``limit`` streams published most recently, so
    that an event applied again (into a new generation, after a rebuild's switch) is published
    once. A stream's events come in version order, on every store."""

    def __init__(self, limit: int = PUBLISHED_STREAMS) -> None:
        self._limit = limit
        self._versions: OrderedDict[str, int] = OrderedDict()

    def new(self, events: Sequence[EventRecord]) -> list[EventRecord]:
        """The events not published yet, in order; from now on they count as published."""
        versions = self._versions
        fresh: list[EventRecord] = []
        for event in events:
            last = versions.get(event.stream_id, 0)
            if event.version > last:
                fresh.append(event)
                versions[event.stream_id] = event.version
            versions.move_to_end(event.stream_id)
        while len(versions) > self._limit:
            versions.popitem(last=False)
        return fresh


class Projector:
    def __init__(
        self,
        store: EventStore,
        read_model: AccountReadModel,
        progress: ProjectionProgress,
        mediator: Mediator,
    ) -> None:
        self._store = store
        self._read_model = read_model
        self._generations = read_model if isinstance(read_model, Generations) else None
        self._progress = progress
        self._mediator = mediator
        self._subscription: EventSubscription | None = None
        self._generation = 0  # the generation the subscription feeds
        self._published = PublishedVersions()
        self.applied = 0

    async def _subscription_now(self) -> EventSubscription:
        if self._subscription is None:
            if self._generations is None:
                checkpoint = await self._read_model.checkpoint(PROJECTION)
                group = PROJECTION
            else:
                generation = await self._generations.live_generation()
                checkpoint = await self._generations.checkpoint_in(generation, PROJECTION)
                self._generation = generation
                group = subscription_group(PROJECTION, generation)
            self._subscription = self._store.subscribe(group, checkpoint)
        return self._subscription

    async def _apply(self, changes: Sequence[ViewChange], checkpoint: int) -> None:
        if self._generations is None:
            await self._read_model.apply(PROJECTION, changes, checkpoint)
        else:
            generation = self._generation
            await self._generations.apply_in(generation, PROJECTION, changes, checkpoint)

    async def step(self, timeout: float) -> int:
        """Apply the next batch, if one arrives within ``timeout``; return how many events."""
        try:
            subscription = await self._subscription_now()
            batch = await subscription.next_batch(timeout)
            if batch is None or not batch.events:
                return 0
            await self._apply(project_all(batch.events), batch.checkpoint)
        except GenerationSwitchedError as switched:
            # Nothing of this batch was written or committed: start over on the new generation.
            log.info("the read model switched to generation %d; following it", switched.live)
            await self.close()
            return await self.step(timeout)
        await subscription.commit(batch)
        self.applied += len(batch.events)
        self._progress.advanced()
        await self._publish(batch.events)
        return len(batch.events)

    async def _publish(self, events: list[EventRecord]) -> None:
        """Publish the events not published before. A subscriber's failure is logged, never the
        batch's: the batch is committed."""
        fresh = self._published.new(events)
        if not fresh:
            return
        try:
            await self._mediator.publish(EventsProjected(fresh))
        except Exception:
            log.exception("an EventsProjected subscriber failed")

    async def catch_up(self, idle: float = 0.05) -> int:
        """Apply until no event arrives for ``idle`` seconds."""
        total = 0
        while count := await self.step(idle):
            total += count
        return total

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step(0.5)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failed batch is not committed; the loop retries it after a pause.
                log.exception("projection batch failed; retrying")
                await self.close()
                await asyncio.sleep(1.0)

    async def rebuild(self, on_progress: RebuildProgress | None = None, idle: float = 0.05) -> int:
        """Replay every event into a new generation of the read model and switch to it
        (``handlers.accounts.rebuild``), while queries and the live projector carry on; return
        the events applied. Refused with ``ProjectionBusyError`` while another rebuild of the
        same read model runs, where the read model can tell (``ProjectionClaims``).

        A read model without generations (the in-process one) is dropped and replayed in
        place; the stream has ended when no event arrives for ``idle`` seconds. A rebuild
        publishes nothing: it replays what was published when it happened."""
        claim = None
        if isinstance(self._read_model, ProjectionClaims):
            claim = await self._read_model.claim()
        try:
            if self._generations is not None:
                return await rebuild_into_new_generation(
                    self._store, self._generations, on_progress, idle
                )
            return await self._rebuild_in_place(on_progress, idle)
        finally:
            if claim is not None:
                await claim.release()

    async def _rebuild_in_place(self, on_progress: RebuildProgress | None, idle: float) -> int:
        await self.close()
        await self._read_model.reset()
        subscription = self._store.subscribe(f"{PROJECTION}-rebuild", 0)
        total = 0
        timeout = 0.5
        try:
            while (batch := await subscription.next_batch(timeout)) is not None and batch.events:
                changes = project_all(batch.events)
                await self._read_model.apply(PROJECTION, changes, batch.checkpoint)
                await subscription.commit(batch)
                total += len(batch.events)
                timeout = idle
                if on_progress is not None:
                    on_progress(total, None)
        finally:
            await subscription.close()
        return total

    async def close(self) -> None:
        """Close the subscription."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.close()
