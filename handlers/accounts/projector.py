"""Keeps the read model up to date: reads the store's events after the read model's checkpoint,
turns them into view changes and applies them with the new checkpoint, then publishes
``EventsProjected`` for the batch (live feeds and any subscribing plugin)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from core.mediator import Mediator
from core.ports import EventStore, EventSubscription
from core.records import EventRecord
from handlers.accounts.notifications import EventsProjected
from handlers.accounts.progress import ProjectionProgress
from handlers.accounts.projection import PROJECTION, project_all
from handlers.accounts.readmodel import (
    AccountReadModel,
    ClaimMode,
    ProjectionBusyError,
    ProjectionClaim,
    ProjectionClaims,
)

__all__ = ["Projector"]

log = logging.getLogger(__name__)


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
        self._progress = progress
        self._mediator = mediator
        self._subscription: EventSubscription | None = None
        self._claim: ProjectionClaim | None = None
        self.applied = 0

    async def _take_claim(self, mode: ClaimMode) -> None:
        if self._claim is None and isinstance(self._read_model, ProjectionClaims):
            self._claim = await self._read_model.claim(mode)

    async def _subscription_now(self) -> EventSubscription:
        if self._subscription is None:
            await self._take_claim("live")
            checkpoint = await self._read_model.checkpoint(PROJECTION)
            self._subscription = self._store.subscribe(PROJECTION, checkpoint)
        return self._subscription

    async def step(self, timeout: float, publish: bool = True) -> int:
        """Apply the next batch, if one arrives within ``timeout``; return how many events.
        A rebuild does not ``publish``: it replays what was published when it happened."""
        subscription = await self._subscription_now()
        batch = await subscription.next_batch(timeout)
        if batch is None or not batch.events:
            return 0
        await self._read_model.apply(PROJECTION, project_all(batch.events), batch.checkpoint)
        await subscription.commit(batch)
        self.applied += len(batch.events)
        self._progress.advanced()
        if publish:
            await self._published(batch.events)
        return len(batch.events)

    async def _published(self, events: list[EventRecord]) -> None:
        """A subscriber's failure is logged, never the batch's: the batch is committed."""
        try:
            await self._mediator.publish(EventsProjected(events))
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
            except ProjectionBusyError as error:
                log.warning("%s", error)
                await asyncio.sleep(1.0)
            except Exception:
                # A failed batch is not committed; the loop retries it after a pause.
                log.exception("projection batch failed; retrying")
                await self.close()
                await asyncio.sleep(1.0)

    async def rebuild(
        self, on_progress: Callable[[int], None] | None = None, idle: float = 0.05
    ) -> int:
        """Drop the views and replay every event from the start. A rebuild runs with the writers
        stopped, so the stream has ended when no event arrives for ``idle`` seconds once events
        flow (the first batch may wait 0.5 s, for a subscription that takes time to start).

        Refused with ``ProjectionBusyError`` while another projector projects into the same
        read model, where the read model can tell (``ProjectionClaims``)."""
        await self.close()
        await self._take_claim("rebuild")
        try:
            await self._read_model.reset()
            self._subscription = self._store.subscribe(f"{PROJECTION}-rebuild", 0)
            total = 0
            timeout = 0.5
            while count := await self.step(timeout, publish=False):
                total += count
                timeout = idle
                if on_progress is not None:
                    on_progress(count)
        finally:
            await self.close()
        return total

    async def close(self) -> None:
        """Close the subscription and give up this projector's claim on the read model."""
        subscription, self._subscription = self._subscription, None
        claim, self._claim = self._claim, None
        try:
            if subscription is not None:
                await subscription.close()
        finally:
            if claim is not None:
                await claim.release()
