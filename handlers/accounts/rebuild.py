"""A projection rebuild: every event from the first, into a new generation of the read model
beside the live one (``handlers.accounts.generations``), then an atomic switch.

The rebuild reads the store under a subscription group of the new generation's own; it reads
the next batch while it projects the last one and writes the ones before into the new
generation (``handlers.accounts.rebuild_writes``), and reports its progress against the store's
event count where the store can count (``EventCount``). It stops once it
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
from handlers.accounts.projection import PROJECTION
from handlers.accounts.rebuild_writes import RebuildWrites

__all__ = ["RebuildProgress", "rebuild_into_new_generation"]

# Called after each batch with the events applied so far and the store's total, if known.
RebuildProgress = Callable[[int, int | None], None]

# The first batch may wait this long, for a subscription that takes time to start (Kafka).
FIRST_BATCH_WAIT: Final = 0.5
# How long a rebuild waits for events the store counted before it gives up.
STALL_LIMIT: Final = 60.0
# The events projected while a write runs, at most: past this, the next read waits for it.
MAX_WAITING_EVENTS: Final = 8_192


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


async def _read(subscription: EventSubscription, timeout: float) -> tuple[EventBatch | None, float]:
    return await subscription.next_batch(timeout), timeout


async def _fill(
    build: GenerationBuild,
    subscription: EventSubscription,
    catchup: _Catchup,
    on_progress: RebuildProgress | None,
    idle: float,
) -> int:
    """Reads, projects and writes at once: the store reads the next batch while the event loop
    projects the last one and the read model writes the ones before it. Once caught up, a batch
    read or projected meanwhile is the live projector's."""
    writes = RebuildWrites(build, subscription)

    async def written() -> bool:
        """The write in flight done and committed, and the progress reported; True once the
        rebuild has caught up with the store."""
        events = await writes.finish()
        if not events:
            return False
        if on_progress is not None:
            on_progress(writes.applied, catchup.total)
        return await catchup.reached(writes.applied, events)

    stalled = 0.0
    reading = asyncio.ensure_future(_read(subscription, FIRST_BATCH_WAIT))
    try:
        while True:
            batch, waited = await reading
            if batch is not None and batch.events:
                stalled = 0.0
                reading = asyncio.ensure_future(_read(subscription, idle))
                await asyncio.sleep(0)  # the read starts before the projection takes the loop
                writes.project(batch)
                if writes.running and writes.waiting_events < MAX_WAITING_EVENTS:
                    continue
                if await written():
                    return writes.applied
                writes.start()
                continue
            # Nothing within ``waited``: write what waits, then stop, or wait for what is counted.
            if await written():
                return writes.applied
            writes.start()
            if await written():
                return writes.applied
            if not catchup.expects_more(writes.applied):
                return writes.applied
            stalled += waited
            if stalled >= STALL_LIMIT:
                raise StoreUnavailableError(
                    f"the rebuild got no event for {STALL_LIMIT:.0f} s with "
                    f"{catchup.total} counted and {writes.applied} applied"
                )
            reading = asyncio.ensure_future(_read(subscription, FIRST_BATCH_WAIT))
    finally:
        reading.cancel()
        with contextlib.suppress(BaseException):
            await reading
        await writes.cancel()


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
