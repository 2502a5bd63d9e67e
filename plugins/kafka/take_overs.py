"""Taking partitions over for writing, and back after a fencing (owners.py decides which).

A take-over is a task of its own per partition: it starts the partition's writer (which fences
the previous owner, reads the partition to its end and announces itself), and starts another
after ``_TAKE_OVER_RETRY`` when that fails, for as long as the partition is this instance's. A
writer fenced while the group still assigns its partition here is taken back after
``retake_after`` (``RETAKE_AFTER``), unless an owner's record newer than ours names another
instance: then the group is about to revoke it here, and it is asked again later.

Runs on the event loop that started the store."""

from __future__ import annotations

import asyncio
import logging
from typing import Final, Protocol

from core.errors import StoreUnavailableError
from plugins.kafka.errors import fenced
from plugins.kafka.tailer import Tailer
from plugins.kafka.writer import KafkaWriter

__all__ = ["RETAKE_AFTER", "Owning", "TakeOvers"]

log = logging.getLogger(__name__)

_TAKE_OVER_RETRY: Final = 1.0  # between take-over attempts of a partition still assigned here
# A writer fenced while the group still assigns its partition here: a zombie woken from a
# pause (whose view of the owners lags) may have started a producer. By this time its group
# membership has heard that it lost the partition, and the partition is taken back.
RETAKE_AFTER: Final = 10.0


class Owning(Protocol):
    """The partition owners' bookkeeping that a take-over reads and tells (owners.py)."""

    @property
    def open(self) -> bool: ...

    def assigned_here(self, partition: int) -> bool: ...

    def owns(self, partition: int) -> bool: ...

    def writes(self, partition: int) -> bool: ...

    def new_writer(self, partition: int) -> KafkaWriter: ...

    async def taken(self, partition: int, writer: KafkaWriter) -> None: ...

    def ended(self, partition: int) -> None: ...

    def forget_announcement(self, partition: int) -> None: ...


class TakeOvers:
    def __init__(self, owners: Owning) -> None:
        self._owners = owners
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tailer: Tailer | None = None
        self._taking: dict[int, asyncio.Task[None]] = {}
        self.retake_after = RETAKE_AFTER

    def start(self, loop: asyncio.AbstractEventLoop, tailer: Tailer) -> None:
        self._loop = loop
        self._tailer = tailer

    def under_way(self, partition: int) -> bool:
        return partition in self._taking

    def any(self) -> bool:
        return bool(self._taking)

    def task(self, partition: int) -> asyncio.Task[None] | None:
        return self._taking.get(partition)

    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self._taking.values())

    def take(self, partition: int) -> None:
        """Start taking ``partition`` over, unless it is written or being taken over here."""
        if self._loop is None or self._owners.writes(partition) or partition in self._taking:
            return
        if self._tailer is not None:
            self._tailer.hold(partition)
        self._taking[partition] = self._loop.create_task(self._take(partition))

    async def _take(self, partition: int) -> None:
        owners = self._owners
        try:
            while owners.open and owners.owns(partition):
                writer = owners.new_writer(partition)
                try:
                    await writer.start()
                except StoreUnavailableError as error:
                    if fenced(error):  # another instance took it meanwhile
                        log.warning("partition %d was taken by another instance", partition)
                        self.take_back_later(partition)
                        break
                    log.warning(
                        "taking partition %d over failed (%s); again soon", partition, error
                    )
                    await asyncio.sleep(_TAKE_OVER_RETRY)
                    continue
                await owners.taken(partition, writer)
                break
        finally:
            self._taking.pop(partition, None)
            owners.ended(partition)

    def take_back_later(self, partition: int) -> None:
        """The partition stays assigned here as the group decided, unwritten. After
        ``retake_after`` it is taken back unless the group has taken it away meanwhile, or an
        owner's record newer than ours names another instance (then the group is about to
        revoke it here: asked again later)."""
        if self._loop is not None and self._owners.assigned_here(partition):
            self._loop.call_later(self.retake_after, self._take_back, partition)

    def _take_back(self, partition: int) -> None:
        owners = self._owners
        if not owners.open or not owners.assigned_here(partition):
            return
        if owners.writes(partition) or partition in self._taking:
            return
        if not owners.owns(partition):
            self.take_back_later(partition)
            return
        log.warning("partition %d: still assigned here after a fencing; taken back", partition)
        owners.forget_announcement(partition)
        self.take(partition)
