"""Blue/green rebuilds: a read model that keeps its views in numbered generations.

Queries read the *live* generation, which a small pointer names (a file beside the SQLite
views, a document in MongoDB). A rebuild fills a new generation beside it from the first event,
catches up with the store, then switches the pointer in one atomic write and drops the old
generation; queries answer from the old one until the switch and from the new one after it.

A projector follows the live generation: it subscribes from that generation's checkpoint and
applies each batch into that generation only (``apply_in``). Once the pointer has moved it is
refused (``GenerationSwitchedError``, nothing written), subscribes again from the new
generation's checkpoint, and replays what the rebuild had not applied, so no event is lost at
the seam. Each generation has its own subscription group (``subscription_group``), so a store
that keeps progress per group (Kafka) hands the live projector the rebuild's progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from core.errors import BalanceError
from handlers.accounts.readmodel import ViewChange

__all__ = [
    "GenerationBuild",
    "GenerationSwitchedError",
    "Generations",
    "subscription_group",
]


def subscription_group(projection: str, generation: int) -> str:
    """The store subscription group that feeds ``generation``: the projection's own name for
    generation 0 (a read model from before blue/green rebuilds), a name of its own after."""
    return projection if generation == 0 else f"{projection}-g{generation}"


class GenerationSwitchedError(BalanceError):
    """The live generation is no longer the one named: a rebuild switched the pointer."""

    def __init__(self, named: int, live: int) -> None:
        super().__init__(f"read model generation {named} is no longer live (now {live})")
        self.named = named
        self.live = live


class GenerationBuild(Protocol):
    """A new generation being filled beside the live one; queries do not see it until
    ``switch``."""

    @property
    def number(self) -> int: ...

    async def checkpoint(self, projection: str) -> int: ...

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        """As ``AccountReadModel.apply``, into this generation."""
        ...

    async def switch(self) -> int:
        """Make this generation durable, then the live one in one atomic write, then drop the
        generation it replaced; returns that generation's number."""
        ...

    async def discard(self) -> None:
        """Drop this generation (a rebuild that failed); the live one is untouched."""
        ...


@runtime_checkable
class Generations(Protocol):
    """What a read model rebuilt blue/green offers besides ``AccountReadModel``."""

    async def live_generation(self) -> int:
        """The generation queries read now, as the pointer says at this moment."""
        ...

    async def checkpoint_in(self, generation: int, projection: str) -> int:
        """The projection's checkpoint in ``generation``; ``GenerationSwitchedError`` if it is
        not the live one."""
        ...

    async def apply_in(
        self, generation: int, projection: str, changes: Sequence[ViewChange], checkpoint: int
    ) -> None:
        """``apply`` into ``generation``; ``GenerationSwitchedError``, and nothing written, if it
        is not the live one when the batch is handed to the backend."""
        ...

    async def new_generation(self) -> GenerationBuild:
        """An empty generation numbered after every existing one. The leftovers of a rebuild
        that never switched (a crash, a kill) and of one that switched but never dropped the old
        generation are removed first; the live generation is never touched."""
        ...
