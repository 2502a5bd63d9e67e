"""Finishing pending transfers after start-up: when this instance gains streams (a partition
taken over, ``core.placement.GainsWrites``), and later when a run left one pending and while
some written here stay pending (a step got no definite answer: the instance that writes its
account was down or changing hands), with pauses from ``FIRST_PAUSE`` doubling to
``LONGEST_PAUSE``. One run at a time; a take-over during a run asks for one more at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from core.mediator import Mediator
from core.placement import GainsWrites, Here, StreamPlacement
from handlers.accounts.messages import ResumeTransfers
from handlers.accounts.readmodel import AccountReadModel
from handlers.accounts.transfer import transfer_stream

__all__ = ["FIRST_PAUSE", "LONGEST_PAUSE", "LeftPending", "TransferResumer"]

log = logging.getLogger(__name__)

FIRST_PAUSE: Final = 2.0
LONGEST_PAUSE: Final = 60.0


class LeftPending:
    """Told by a transfer's run that it left the transfer pending (a step got no definite
    answer); the resumer then tries again later."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def listen(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def tell(self) -> None:
        for callback in self._listeners:
            callback()


class TransferResumer:
    def __init__(
        self,
        mediator: Mediator,
        placement: StreamPlacement,
        read_model: AccountReadModel,
        left_pending: LeftPending,
    ) -> None:
        self._mediator = mediator
        self._placement = placement
        self._read_model = read_model
        self._task: asyncio.Task[None] | None = None
        self._again = asyncio.Event()
        self._running = False
        if isinstance(placement, GainsWrites):
            placement.on_gained(self.gained)
        left_pending.listen(self.later)

    async def start(self) -> int:
        """Resume now (start-up), then keep resuming while transfers written here stay pending
        or streams are gained."""
        resumed = await self._mediator.send(ResumeTransfers())
        self._running = True
        if await self._pending_here():
            self._run_later()
        return resumed

    def gained(self) -> None:
        """Streams became written here: resume at once (ignored before ``start``, which
        resumes everything written here anyway)."""
        if not self._running:
            return
        self._again.set()
        self._run_later()

    def later(self) -> None:
        """A transfer written here was left pending: resume after a pause."""
        if self._running:
            self._run_later()

    def _run_later(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        pause = FIRST_PAUSE
        while self._running:
            if not self._again.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._again.wait(), pause)
                pause = min(pause * 2, LONGEST_PAUSE)
            if self._again.is_set():
                pause = FIRST_PAUSE
            self._again.clear()
            try:
                resumed = await self._mediator.send(ResumeTransfers())
                if resumed:
                    log.info("resumed %d pending transfers", resumed)
                if not self._again.is_set() and not await self._pending_here():
                    return
            except Exception:
                log.exception("resuming the pending transfers failed; again later")

    async def _pending_here(self) -> bool:
        return any(
            isinstance(self._placement.place(transfer_stream(t)), Here)
            for t in await self._read_model.pending_transfers()
        )

    async def close(self) -> None:
        self._running = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
