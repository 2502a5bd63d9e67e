"""The accounts slice's repositories: accounts and transfers, loaded from and saved to the event
store (``core.repository``), with their snapshots and caches."""

from __future__ import annotations

from core.ports import EventStore, SnapshotStore
from core.repository import Repository
from handlers.accounts.account import ACCOUNT_KIND, AccountState
from handlers.accounts.transfer import TRANSFER_KIND, TransferState

__all__ = ["Accounts", "Transfers"]


class Accounts(Repository[AccountState]):
    def __init__(
        self,
        store: EventStore,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 100,
        cache_size: int = 10_000,
    ) -> None:
        super().__init__(store, ACCOUNT_KIND, snapshots, snapshot_every, cache_size)


class Transfers(Repository[TransferState]):
    def __init__(self, store: EventStore, snapshots: SnapshotStore | None = None) -> None:
        super().__init__(store, TRANSFER_KIND, snapshots, snapshot_every=1000, cache_size=1000)
