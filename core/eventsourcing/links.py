"""Chains of queued appends on one stream, for stores that pipeline appends.

An append decided from the state a queued append leads to, before that one committed, must not
be written if that one fails, even if the stream reaches the version it expects some other way
(another process wrote as many events, or an earlier append is retried). Only whoever decided it
knows which state it was decided from, so the caller names it: the append's ``Link`` follows the
link of the queued append whose resulting state it was decided from, or nothing when it was
decided from a state read from the store. The store refuses an append whose predecessor failed,
and marks an append's link failed when it will not be written.
"""

from __future__ import annotations

__all__ = ["Link"]


class Link:
    """One queued append's place in its stream's chain. ``failed`` is set by the store that
    decides the append will not be written; a store that learns later that an append whose
    outcome it could not tell was written after all clears it."""

    __slots__ = ("after", "failed")

    def __init__(self, after: Link | None = None) -> None:
        self.after = after
        self.failed = False

    @property
    def broken(self) -> bool:
        """True when the append this one follows failed, so this one must not be written."""
        return self.after is not None and self.after.failed
