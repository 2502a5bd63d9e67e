"""The accounts slice's start-up work (``balance_lifecycle``): bring the read model up to date,
finish the transfers a crash left pending (and those it gains later: ``resumer``), then keep
projecting in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from core.peers import PeerChannel
from handlers.accounts.projector import Projector
from handlers.accounts.resumer import TransferResumer

__all__ = ["AccountsStartup"]

log = logging.getLogger(__name__)


class AccountsStartup:
    def __init__(self, projector: Projector, resumer: TransferResumer, peers: PeerChannel) -> None:
        self._projector = projector
        self._resumer = resumer
        self._peers = peers
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, background: bool) -> None:
        """``background``: this process projects (catch up first, then follow the store)."""
        if background:
            await self._projector.catch_up()
        resumed = await self._resumer.start()
        if resumed:
            log.info("resumed %d pending transfers", resumed)
        if background:
            self._stop.clear()
            self._task = asyncio.create_task(self._projector.run(self._stop))

    async def close(self) -> None:
        await self._resumer.close()
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._projector.close()
        await self._peers.close()
