"""Per-key asyncio locks: commands on one aggregate queue up in this process instead of racing
and retrying. Optimistic concurrency in the store still guards against other processes."""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """``async with locks.hold(key):`` one holder per key at a time, first come first served.
    A key's lock exists while someone holds or waits for it, so the map does not grow."""

    def __init__(self) -> None:
        self._locks: dict[str, _Entry] = {}

    def hold(self, key: str) -> _Hold:
        return _Hold(self, key)

    def _leave(self, key: str) -> None:
        entry = self._locks[key]
        if entry.users == 1:
            del self._locks[key]
        else:
            entry.users -= 1

    def __len__(self) -> int:
        return len(self._locks)


class _Entry:
    """A key's lock and how many hold it or wait for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 1


class _Hold:
    """The context manager of ``KeyedLocks.hold`` (a plain class: no generator per command)."""

    __slots__ = ("_key", "_lock", "_locks")

    def __init__(self, locks: KeyedLocks, key: str) -> None:
        self._locks = locks
        self._key = key
        self._lock: asyncio.Lock | None = None

    async def __aenter__(self) -> None:
        entries = self._locks._locks
        entry = entries.get(self._key)
        if entry is None:
            entry = entries[self._key] = _Entry()
        else:
            entry.users += 1
        lock = entry.lock
        try:
            await lock.acquire()
        except BaseException:
            self._locks._leave(self._key)  # cancelled while waiting
            raise
        self._lock = lock

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._lock is not None
        self._lock.release()
        self._lock = None
        self._locks._leave(self._key)
