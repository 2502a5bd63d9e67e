"""The read-model port: where the projection writes views and queries read them.

Backends implement it (``plugins/memory``, ``plugins/sqlite``, ``plugins/mongo``). Every write
is guarded by (stream, version), so applying the same changes twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import msgspec

from core.errors import BalanceError
from core.ports import Lifecycle
from handlers.accounts.views import AccountView, Closing, Movement, TransferView

__all__ = [
    "AccountChanged",
    "AccountOpenedView",
    "AccountReadModel",
    "FeedPage",
    "MovementAdded",
    "ProjectionBusyError",
    "ProjectionClaim",
    "ProjectionClaims",
    "TransferRequestedView",
    "TransferStatusChanged",
    "ViewChange",
    "closing_of",
]


# The changes that hold a view are not tracked by the garbage collector (``gc=False``): a view
# holds only text, numbers and times, so neither can be in a reference cycle, and a rebuild
# holds thousands of them at once.


class AccountOpenedView(msgspec.Struct, frozen=True, tag=True, gc=False):
    """Insert the account if it is not there yet."""

    account: AccountView


class AccountChanged(msgspec.Struct, frozen=True, tag=True):
    """Set these fields where the stored version is lower than ``version``."""

    account_id: str
    version: int
    balance: int | None = None
    status: str | None = None
    closed_at: datetime | None = None


class MovementAdded(msgspec.Struct, frozen=True, tag=True, gc=False):
    """Insert the statement line; its (account, version) is unique, so a repeat is ignored."""

    movement: Movement


class TransferRequestedView(msgspec.Struct, frozen=True, tag=True, gc=False):
    """Insert the transfer if it is not there yet."""

    transfer: TransferView


class TransferStatusChanged(msgspec.Struct, frozen=True, tag=True):
    """Set status and reason where the stored version is lower than ``version``."""

    transfer_id: str
    version: int
    status: str
    reason: str | None = None


ViewChange = (
    AccountOpenedView
    | AccountChanged
    | MovementAdded
    | TransferRequestedView
    | TransferStatusChanged
)


class FeedPage(msgspec.Struct, frozen=True):
    """What a live feed reads each time it looks: the account's next movements and, once the
    account is closed, its close."""

    movements: list[Movement]
    closing: Closing | None = None


def closing_of(account: AccountView | None) -> Closing | None:
    """The close of ``account``, if it is closed (the last version of its stream)."""
    if account is None or account.status != "closed":
        return None
    return Closing(account.id, account.version, account.closed_at)


class AccountReadModel(Lifecycle, Protocol):
    async def checkpoint(self, projection: str) -> int:
        """The last store position this projection applied (0 before the first)."""
        ...

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        """Apply ``changes`` and record ``checkpoint`` atomically where the backend can (SQLite);
        every change is idempotent, so a backend without transactions stays correct."""
        ...

    async def reset(self) -> None:
        """Drop every view and checkpoint, for a rebuild in place (a read model that does not
        keep generations, ``handlers.accounts.generations``)."""
        ...

    async def get_account(self, account_id: str) -> AccountView | None: ...

    async def list_accounts(
        self, owner: str | None, after: str | None, limit: int
    ) -> list[AccountView]:
        """Accounts ordered by id, those with an id greater than ``after``; all owners if None."""
        ...

    async def statement(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime | None,
        after_version: int,
        limit: int,
    ) -> list[Movement]:
        """Movements ordered by version, after ``after_version``, with ``start <= occurred_at <
        end`` where given."""
        ...

    async def feed_page(self, account_id: str, after_version: int, limit: int) -> FeedPage:
        """One read for a live feed: the movements ``statement`` gives (no time bounds) and the
        account's close, the close read no later than the movements. The projection writes a
        close after every movement before it, so a page with a close and fewer than ``limit``
        movements holds every movement up to the close."""
        ...

    async def get_transfer(self, transfer_id: str) -> TransferView | None: ...

    async def pending_transfers(self) -> list[str]:
        """Ids of transfers still pending, to resume after a crash."""
        ...


class ProjectionBusyError(BalanceError):
    """Another rebuild of the same read model runs: two would each build a generation and
    switch to it, one after the other."""

    def __init__(self, read_model: str, holders: str = "") -> None:
        held = f" ({holders})" if holders else ""
        super().__init__(
            f"cannot rebuild {read_model}: another `balance projections rebuild` is rebuilding "
            f"it{held}; wait for it to finish"
        )


class ProjectionClaim(Protocol):
    async def release(self) -> None: ...


@runtime_checkable
class ProjectionClaims(Protocol):
    """What a read model that several processes can rebuild offers, so that only one rebuild
    runs at a time. Live projectors need no claim: a rebuild builds a generation of its own
    beside theirs (``handlers.accounts.generations``)."""

    async def claim(self) -> ProjectionClaim:
        """The rebuild claim, exclusive: refused with ``ProjectionBusyError`` at once while
        another rebuild holds it; a claim held by a process that died frees itself."""
        ...
