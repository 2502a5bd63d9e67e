"""A projection rebuild: every event from the first, into a new generation of the read model
beside the live one (``handlers.accounts.generations``), then an atomic switch.

The rebuild reads the store under a subscription group of the new generation's own, applies
each batch into the new generation while the next batch is being read, and reports its progress
against the store's event count where the store can count (``EventCount``). It stops once it
has caught up: when no event arrives for ``idle`` seconds, or, on a store that counts, when it
has applied every event the store held at its last look and fewer than a batch arrived since
(while events it counted are still to come, a quiet moment does not end it: a Kafka consumer
waits seconds for its partitions; ``STALL_LIMIT`` seconds without any fails the rebuild).
It then switches; a live projector applies what arrived after, from the new generation's
checkpoint. Anything that fails before the switch drops the new generation and leaves the live
one untouched; a kill leaves a file or collections that the next rebuild removes first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

from core.errors import StoreUnavailableError
from core.ports import EventBatch, EventCount, EventStore, EventSubscription
from handlers.accounts.generations import GenerationBuild, Generations, subscription_group
from handlers.accounts.projection import PROJECTION, project_all

__all__ = ["RebuildProgress", "rebuild_into_new_generation"]

# Called after each batch with the events applied so far and the store's total, if known.
RebuildProgress = Callable[[int, int | None], None]

# The first batch may wait this long, for a subscription that takes time to start (Kafka).
FIRST_BATCH_WAIT: Final = 0.5
# How long a rebuild waits for events the store counted before it gives up.
STALL_LIMIT: Final = 60.0


class _Catchup:
    """Whether the rebuild has caught up with the store, and the progress total."""

    def __init__(self, store: EventStore) -> None:
        self._store = store if isinstance(store, EventCount) else None
        self.total: int | None = None

    async def look(self) -> None:
        if self._store is not None:
            self.total = await self._store.event_count()

    def expects_more(self, applied: int) -> bool:
        return self.total is not None and applied < self.total

    async def reached(self, applied: int, batch: int) -> bool:
        """On a counting store: every event of the last look applied, and fewer than ``batch``
        more since (those the live projector applies after the switch)."""
        if self.total is None or applied < self.total:
            return False
        before = self.total
        await self.look()
        return self.total is not None and self.total - before < max(batch, 1)


async def _fill(
    build: GenerationBuild,
    subscription: EventSubscription,
    catchup: _Catchup,
    on_progress: RebuildProgress | None,
    idle: float,
) -> int:
    applied = 0
    timeout = FIRST_BATCH_WAIT
    stalled = 0.0
    writing: tuple[asyncio.Task[None], EventBatch] | None = None
    try:
        while True:
            batch = await subscription.next_batch(timeout)  # read while the last batch writes
            if writing is not None:
                task, written = writing
                writing = None
                await task
                await subscription.commit(written)
                applied += len(written.events)
                if on_progress is not None:
                    on_progress(applied, catchup.total)
                if await catchup.reached(applied, len(written.events)):
                    batch = None  # caught up; a batch read meanwhile is the live projector's
            if (batch is None or not batch.events) and catchup.expects_more(applied):
                stalled += timeout
                if stalled >= STALL_LIMIT:
                    raise StoreUnavailableError(
                        f"the rebuild got no event for {STALL_LIMIT:.0f} s with "
                        f"{catchup.total} counted and {applied} applied"
                    )
                timeout = FIRST_BATCH_WAIT
                continue
            if batch is None or not batch.events:
                return applied
            timeout, stalled = idle, 0.0
            changes = project_all(batch.events)
            task = asyncio.ensure_future(build.apply(PROJECTION, changes, batch.checkpoint))
            writing = (task, batch)
    finally:
        if writing is not None:
            writing[0].cancel()
            with contextlib.suppress(BaseException):
                await writing[0]


async def rebuild_into_new_generation(
    store: EventStore,
    generations: Generations,
    on_progress: RebuildProgress | None = None,
    idle: float = 0.05,
) -> int:
    """Build, catch up, switch, drop the old generation; return the events applied."""
    build = await generations.new_generation()
    try:
        catchup = _Catchup(store)
        await catchup.look()
        if on_progress is not None:
            on_progress(0, catchup.total)
        subscription = store.subscribe(subscription_group(PROJECTION, build.number), 0)
        try:
            applied = await _fill(build, subscription, catchup, on_progress, idle)
        finally:
            await subscription.close()
    except BaseException:
        await asyncio.shield(build.discard())
        raise
    await build.switch()
    return applied
