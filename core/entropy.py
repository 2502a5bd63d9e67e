"""Random bytes for ids, from the OS's CSPRNG, fetched a few KiB at a time.

``os.urandom`` releases the GIL around its system call, so on a busy server every call lets a
waiting thread (the SQLite writer, a reader) take the interpreter, and the event loop waits up
to a switch interval to get it back: two such calls per request cost more than the request's
own work. Reading 4 KiB at once makes that one hand-off per few hundred ids. The bytes are the
same kernel CSPRNG output, handed out once each; a forked child starts with an empty buffer.
"""

from __future__ import annotations

import os
import threading
from typing import Final

__all__ = ["random_bytes"]

_CHUNK: Final = 4096


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def take(self, size: int) -> bytes:
        if size > _CHUNK:
            return os.urandom(size)
        with self._lock:
            offset = self._offset
            if offset + size > len(self._buffer):
                self._buffer, offset = os.urandom(_CHUNK), 0
            self._offset = offset + size
            return self._buffer[offset : offset + size]

    def clear(self) -> None:
        # Not under the lock: the child of a fork has only the forking thread, and the lock
        # may have been held by another thread at the moment of the fork.
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0


_pool: Final = _Pool()
os.register_at_fork(after_in_child=_pool.clear)


def random_bytes(size: int) -> bytes:
    """``size`` bytes from the OS's CSPRNG; no two calls in a process get the same bytes."""
    return _pool.take(size)
