"""The accounts slice's start-up work (``balance_lifecycle``): bring the read model up to date,
finish the transfers a crash left pending, then keep projecting in the background; and, where
this instance may start writing streams another one wrote (a partition taken over,
``core.placement.GainsWrites``), finish the pending transfers whose record it now writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from core.mediator import Mediator
from core.peers import PeerChannel
from core.placement import GainsWrites, StreamPlacement
from handlers.accounts.messages import ResumeTransfers
from handlers.accounts.projector import Projector

__all__ = ["AccountsStartup"]

log = logging.getLogger(__name__)


class AccountsStartup:
    def __init__(
        self,
        projector: Projector,
        mediator: Mediator,
        placement: StreamPlacement,
        peers: PeerChannel,
    ) -> None:
        self._projector = projector
        self._peers = peers
        self._mediator = mediator
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resuming: asyncio.Task[None] | None = None
        self._again = False  # another take-over came while resuming
        self._running = False
        if isinstance(placement, GainsWrites):
            placement.on_gained(self._gained)

    async def start(self, background: bool) -> None:
        """``background``: this process projects (catch up first, then follow the store)."""
        if background:
            await self._projector.catch_up()
        resumed = await self._mediator.send(ResumeTransfers())
        if resumed:
            log.info("resumed %d pending transfers", resumed)
        self._running = True
        if background:
            self._stop.clear()
            self._task = asyncio.create_task(self._projector.run(self._stop))

    def _gained(self) -> None:
        """A partition was taken over: resume the pending transfers now written here (one run
        at a time; take-overs during a run ask for one more)."""
        if not self._running:
            return  # start() resumes once the store has started
        if self._resuming is not None and not self._resuming.done():
            self._again = True
            return
        self._resuming = asyncio.create_task(self._resume())

    async def _resume(self) -> None:
        self._again = True
        while self._again and self._running:
            self._again = False
            try:
                resumed = await self._mediator.send(ResumeTransfers())
            except Exception:
                log.exception("resuming the pending transfers after a take-over failed")
                return
            if resumed:
                log.info("resumed %d pending transfers after a take-over", resumed)

    async def close(self) -> None:
        self._running = False
        resuming, self._resuming = self._resuming, None
        if resuming is not None:
            resuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resuming
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._projector.close()
        await self._peers.close()
