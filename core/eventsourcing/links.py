"""Chains of queued appends on one stream, for stores that pipeline appends.

An append queued on top of another one that has not committed yet (it expects the version that
one ends at) was decided from a state that includes it. If that one fails, this one must fail
too, even if the stream happens to reach the version it expects some other way (another process
wrote as many events): its ``Link`` names the one it follows, and the writer refuses an append
whose predecessor failed.
"""

from __future__ import annotations

__all__ = ["Link"]


class Link:
    """One queued append's place in its stream's chain. ``failed`` is set by whoever decides
    that the append will not be written (the writer thread, or the loop when it is refused)."""

    __slots__ = ("after", "end", "failed")

    def __init__(self, after: Link | None, end: int) -> None:
        self.after = after
        self.end = end  # the stream's version once this append is written
        self.failed = False

    @property
    def broken(self) -> bool:
        """True when the append this one follows failed, so this one must not be written."""
        return self.after is not None and self.after.failed

    def follow(self, expected: int) -> Link | None:
        """The link to give an append queued after this one that expects ``expected``: chained
        when it continues this one, unchained otherwise (it was decided from elsewhere)."""
        return self if expected == self.end else None
