"""The rebuild claim on a file-based read model: an advisory lock (``flock``) on a file beside it.

A rebuild holds the lock exclusive, without waiting: a second rebuild is refused at once. The
kernel drops the lock when its holder's file is closed, which includes a process that dies, so
a crash never leaves the read model claimed. ``flock`` locks belong to an open file, not to a
process: two claims in one process exclude each other as two processes' do.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from handlers.accounts.readmodel import ProjectionBusyError

__all__ = ["FileClaim"]


class FileClaim:
    def __init__(self, descriptor: int) -> None:
        self._descriptor: int | None = descriptor

    @classmethod
    def take(cls, path: Path, read_model: str) -> FileClaim:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise ProjectionBusyError(read_model, f"{path} is locked") from None
        except BaseException:
            os.close(descriptor)
            raise
        return cls(descriptor)

    async def release(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)  # closing the file drops the lock
