"""What a read of the Kafka store waits for: the local index to hold every batch of appends that
the partition's writer answered before the read began.

The writer answers a batch once the broker has committed it, and writes its records into the
local index after that (writer.py): a read that starts after an answer must still see what was
answered. The writer thread counts each batch before its answers go out (``answer``) and once
it is indexed (``indexed_up_to``); a reader takes ``answered`` when it starts and, on its own
thread, waits for the index to reach it (``wait_indexed``).
"""

from __future__ import annotations

import threading

__all__ = ["IndexWaits"]


class IndexWaits:
    """Batches answered and batches written into the index (numbered from 1), set by the
    writer thread and read by the reader threads, which wait on the condition."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout  # a reader waits no longer than an append may take
        self._answered = 0
        self._indexed = 0
        self._index_reached = threading.Condition()

    @property
    def answered(self) -> int:
        """The batches answered so far: what a read that starts now must find in the index."""
        return self._answered

    def answer(self) -> None:
        """One more batch is answered (the writer thread, before any caller can see it)."""
        self._answered += 1

    def wait_indexed(self, answered: int) -> None:
        """Blocks (a reader thread) until the index holds the first ``answered`` batches: at
        once, unless a batch has been answered and its index write is still running."""
        if self._indexed >= answered:
            return
        with self._index_reached:
            self._index_reached.wait_for(lambda: self._indexed >= answered, timeout=self._timeout)

    def indexed_up_to(self, batch: int | None = None) -> None:
        """The index holds the first ``batch`` batches (by default every one answered); also
        when no index write will come for them (a failed batch, a writer that stops), so that
        no read waits for it."""
        with self._index_reached:
            self._indexed = self._answered if batch is None else batch
            self._index_reached.notify_all()
