"""Where a stream's writes happen: in this process, at another instance, or nowhere for a moment.

A store with one writer (SQLite, memory) places every stream here. A store whose partitions are
owned by the instances of a group (Kafka) answers from the group's current assignment, so a
command can be sent to the instance that may write its stream before anything is decided on
state that instance alone holds fresh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol, runtime_checkable

import msgspec

__all__ = [
    "HERE",
    "Elsewhere",
    "GainsWrites",
    "Here",
    "Moving",
    "Placement",
    "StreamPlacement",
    "single_writer",
]


class Here(msgspec.Struct, frozen=True):
    """This process writes the stream."""


class Elsewhere(msgspec.Struct, frozen=True):
    """The instance advertising ``url`` writes the stream."""

    url: str


class Moving(msgspec.Struct, frozen=True):
    """The stream's partition is changing hands (or has no owner yet): nobody writes it now."""

    retry_after: float = 1.0


Placement = Here | Elsewhere | Moving
HERE: Final = Here()


@runtime_checkable
class StreamPlacement(Protocol):
    def place(self, stream_id: str) -> Placement:
        """Where ``stream_id`` is written now. Cheap and non-blocking: called per command."""
        ...


@runtime_checkable
class GainsWrites(Protocol):
    """A placement whose instance may start writing streams another one wrote (a partition
    taken over), and says so: work the previous writer left unfinished on those streams (a
    pending transfer) can then be finished here. A store written by one process never does."""

    def on_gained(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on the event loop each time streams become written here."""
        ...


class _SingleWriter:
    def place(self, stream_id: str) -> Placement:
        return HERE


def single_writer() -> StreamPlacement:
    """The placement of a store that one process writes: every stream is here."""
    return _SingleWriter()
