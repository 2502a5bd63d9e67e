"""The accounts read model in process memory, with the same guards as the SQLite one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from handlers.accounts.readmodel import (
    AccountChanged,
    AccountOpenedView,
    FeedPage,
    MovementAdded,
    TransferRequestedView,
    TransferStatusChanged,
    ViewChange,
    closing_of,
)
from handlers.accounts.views import AccountView, Movement, TransferView

__all__ = ["MemoryReadModel"]


class MemoryReadModel:
    """``AccountReadModel`` on dicts. ``apply`` never awaits, so a batch is atomic."""

    def __init__(self) -> None:
        self._accounts: dict[str, AccountView] = {}
        self._movements: dict[str, dict[int, Movement]] = {}
        self._transfers: dict[str, TransferView] = {}
        self._checkpoints: dict[str, int] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ready(self) -> bool:
        return True

    async def checkpoint(self, projection: str) -> int:
        return self._checkpoints.get(projection, 0)

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        for change in changes:
            self._apply(change)
        # A checkpoint never moves back: a stale batch applied again changes nothing.
        self._checkpoints[projection] = max(checkpoint, self._checkpoints.get(projection, 0))

    def _apply(self, change: ViewChange) -> None:
        match change:
            case AccountOpenedView(account=account):
                self._accounts.setdefault(account.id, account)
            case AccountChanged():
                stored = self._accounts.get(change.account_id)
                if stored is not None and stored.version < change.version:
                    self._accounts[change.account_id] = msgspec.structs.replace(
                        stored,
                        version=change.version,
                        balance=stored.balance if change.balance is None else change.balance,
                        status=stored.status if change.status is None else change.status,
                        closed_at=stored.closed_at
                        if change.closed_at is None
                        else change.closed_at,
                    )
            case MovementAdded(movement=movement):
                self._movements.setdefault(movement.account, {}).setdefault(
                    movement.version, movement
                )
            case TransferRequestedView(transfer=transfer):
                self._transfers.setdefault(transfer.id, transfer)
            case TransferStatusChanged():
                stored_transfer = self._transfers.get(change.transfer_id)
                if stored_transfer is not None and stored_transfer.version < change.version:
                    self._transfers[change.transfer_id] = msgspec.structs.replace(
                        stored_transfer,
                        version=change.version,
                        status=change.status,
                        reason=change.reason,
                    )

    async def reset(self) -> None:
        self._accounts.clear()
        self._movements.clear()
        self._transfers.clear()
        self._checkpoints.clear()

    async def get_account(self, account_id: str) -> AccountView | None:
        return self._accounts.get(account_id)

    async def list_accounts(
        self, owner: str | None, after: str | None, limit: int
    ) -> list[AccountView]:
        ids = sorted(
            account_id
            for account_id, view in self._accounts.items()
            if (owner is None or view.owner == owner) and (after is None or account_id > after)
        )
        return [self._accounts[account_id] for account_id in ids[: max(limit, 0)]]

    async def statement(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime | None,
        after_version: int,
        limit: int,
    ) -> list[Movement]:
        movements = self._movements.get(account_id, {})
        lines = [
            movements[version]
            for version in sorted(movements)
            if version > after_version
            and (start is None or movements[version].occurred_at >= start)
            and (end is None or movements[version].occurred_at < end)
        ]
        return lines[: max(limit, 0)]

    async def feed_page(self, account_id: str, after_version: int, limit: int) -> FeedPage:
        closing = closing_of(self._accounts.get(account_id))
        return FeedPage(await self.statement(account_id, None, None, after_version, limit), closing)

    async def get_transfer(self, transfer_id: str) -> TransferView | None:
        return self._transfers.get(transfer_id)

    async def pending_transfers(self) -> list[str]:
        return sorted(t.id for t in self._transfers.values() if t.status == "pending")
