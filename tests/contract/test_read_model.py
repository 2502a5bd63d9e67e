"""The accounts read-model contract, run against every backend in conftest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handlers.accounts.readmodel import (
    AccountChanged,
    AccountOpenedView,
    AccountReadModel,
    FeedPage,
    MovementAdded,
    TransferRequestedView,
    TransferStatusChanged,
    ViewChange,
)
from handlers.accounts.views import AccountView, Closing, Movement, MovementKind, TransferView

T0 = datetime(2026, 3, 1, 9, 0, 0, 250_000, tzinfo=UTC)
HOUR = timedelta(hours=1)
P = "accounts"  # the projection's name


def account(account_id: str = "acc-1", owner: str = "alice", version: int = 1) -> AccountView:
    return AccountView(account_id, owner, "EUR", 0, "open", version, T0)


def movement(
    version: int,
    amount: int,
    balance_after: int,
    account_id: str = "acc-1",
    kind: MovementKind = "deposit",
    at: datetime | None = None,
) -> Movement:
    return Movement(
        id=f"evt-{account_id}-{version}",
        account=account_id,
        kind=kind,
        amount=amount,
        balance_after=balance_after,
        version=version,
        occurred_at=at or T0 + version * HOUR,
        description=f"line {version}",
    )


def moved(m: Movement) -> list[ViewChange]:
    """What the projection emits for one deposit or withdrawal."""
    return [MovementAdded(m), AccountChanged(m.account, m.version, balance=m.balance_after)]


def transfer(transfer_id: str = "tr-1", version: int = 1) -> TransferView:
    return TransferView(
        id=transfer_id,
        source="acc-1",
        destination="acc-2",
        amount=2500,
        currency="EUR",
        status="pending",
        version=version,
        requested_at=T0,
        owner="alice",
        description="rent",
    )


def life() -> list[ViewChange]:
    """An account's life: opened, two deposits, a withdrawal, closed."""
    return [
        AccountOpenedView(account()),
        *moved(movement(2, 10_000, 10_000)),
        *moved(movement(3, 550, 10_550)),
        *moved(movement(4, 10_550, 0, kind="withdrawal")),
        AccountChanged("acc-1", 5, status="closed", closed_at=T0 + 5 * HOUR),
    ]


async def test_account_opened_inserts_once(read_model: AccountReadModel) -> None:
    assert await read_model.get_account("acc-1") is None
    await read_model.apply(P, [AccountOpenedView(account())], 1)
    assert await read_model.get_account("acc-1") == account()

    await read_model.apply(P, [AccountOpenedView(account(owner="mallory"))], 1)
    stored = await read_model.get_account("acc-1")
    assert stored == account()
    assert stored is not None
    assert stored.opened_at.utcoffset() == timedelta(0)


async def test_account_changed_applies_only_newer_versions(read_model: AccountReadModel) -> None:
    await read_model.apply(P, [AccountOpenedView(account())], 1)

    await read_model.apply(P, [AccountChanged("acc-1", 2, balance=700)], 2)
    stored = await read_model.get_account("acc-1")
    assert stored is not None
    assert (stored.balance, stored.version, stored.status) == (700, 2, "open")

    # The same version again, and an older one: both ignored.
    stale = [AccountChanged("acc-1", 2, balance=9), AccountChanged("acc-1", 1, balance=8)]
    await read_model.apply(P, stale, 2)
    assert await read_model.get_account("acc-1") == stored

    closed_at = T0 + 3 * HOUR
    await read_model.apply(P, [AccountChanged("acc-1", 3, status="closed", closed_at=closed_at)], 3)
    assert await read_model.get_account("acc-1") == AccountView(
        "acc-1", "alice", "EUR", 700, "closed", 3, T0, closed_at
    )


async def test_a_change_for_an_unknown_account_is_ignored(read_model: AccountReadModel) -> None:
    await read_model.apply(P, [AccountChanged("ghost", 2, balance=5)], 1)
    assert await read_model.get_account("ghost") is None


async def test_movement_added_once_per_account_and_version(read_model: AccountReadModel) -> None:
    first = movement(2, 100, 100)
    await read_model.apply(P, [MovementAdded(first)], 1)
    await read_model.apply(P, [MovementAdded(movement(2, 999, 999))], 2)  # the same line again

    lines = await read_model.statement("acc-1", None, None, 0, 100)
    assert lines == [first]
    assert lines[0].occurred_at.utcoffset() == timedelta(0)


async def test_transfers_insert_once_and_change_status_by_version(
    read_model: AccountReadModel,
) -> None:
    await read_model.apply(P, [TransferRequestedView(transfer())], 1)
    await read_model.apply(P, [TransferRequestedView(transfer(version=9))], 2)
    assert await read_model.get_transfer("tr-1") == transfer()
    assert await read_model.get_transfer("tr-2") is None

    await read_model.apply(P, [TransferStatusChanged("tr-1", 2, "failed", "insufficient funds")], 3)
    await read_model.apply(P, [TransferStatusChanged("tr-1", 2, "completed")], 4)  # stale
    stored = await read_model.get_transfer("tr-1")
    assert stored is not None
    assert (stored.status, stored.reason, stored.version) == ("failed", "insufficient funds", 2)
    assert stored.requested_at == T0
    assert stored.requested_at.utcoffset() == timedelta(0)


async def test_applying_the_same_changes_twice_changes_nothing(
    read_model: AccountReadModel,
) -> None:
    await read_model.apply(P, life(), 5)
    once = (
        await read_model.get_account("acc-1"),
        await read_model.statement("acc-1", None, None, 0, 100),
    )
    await read_model.apply(P, life(), 5)
    # And in pieces, as a redelivery after a crash would.
    for change in life():
        await read_model.apply(P, [change], 5)
    twice = (
        await read_model.get_account("acc-1"),
        await read_model.statement("acc-1", None, None, 0, 100),
    )

    assert twice == once
    assert once[0] == AccountView("acc-1", "alice", "EUR", 0, "closed", 5, T0, T0 + 5 * HOUR)
    assert [m.balance_after for m in once[1]] == [10_000, 10_550, 0]


async def test_a_feed_page_brings_the_movements_and_the_close_in_one_read(
    read_model: AccountReadModel,
) -> None:
    changes = life()
    await read_model.apply(P, changes[:5], 1)  # opened, two deposits
    lines = await read_model.statement("acc-1", None, None, 0, 100)
    assert await read_model.feed_page("acc-1", 0, 100) == FeedPage(lines)
    assert await read_model.feed_page("acc-1", 2, 100) == FeedPage(lines[1:])

    await read_model.apply(P, changes[5:], 2)  # the withdrawal and the close
    close = Closing("acc-1", 5, T0 + 5 * HOUR)
    lines = await read_model.statement("acc-1", None, None, 0, 100)
    assert [m.version for m in lines] == [2, 3, 4]
    assert await read_model.feed_page("acc-1", 0, 100) == FeedPage(lines, close)
    assert await read_model.feed_page("acc-1", 1, 2) == FeedPage(lines[:2], close)
    assert await read_model.feed_page("acc-1", 4, 100) == FeedPage([], close)
    assert await read_model.feed_page("acc-1", 0, 0) == FeedPage([], close)
    assert await read_model.feed_page("acc-2", 0, 100) == FeedPage([])


async def test_the_checkpoint_is_stored_with_the_changes(read_model: AccountReadModel) -> None:
    assert await read_model.checkpoint(P) == 0
    await read_model.apply(P, life()[:3], 7)
    assert await read_model.checkpoint(P) == 7
    assert await read_model.checkpoint("other") == 0

    await read_model.apply(P, [], 12)  # a batch of events that change no view still counts
    assert await read_model.checkpoint(P) == 12
    await read_model.apply("other", [], 3)
    assert (await read_model.checkpoint(P), await read_model.checkpoint("other")) == (12, 3)


async def test_the_checkpoint_never_moves_back(read_model: AccountReadModel) -> None:
    await read_model.apply(P, [], 12)
    await read_model.apply(P, [], 5)
    assert await read_model.checkpoint(P) == 12


async def test_list_accounts_pages_by_id_for_one_owner_or_all(
    read_model: AccountReadModel,
) -> None:
    owners = {"acc-1": "alice", "acc-2": "bob", "acc-3": "alice", "acc-4": "alice", "acc-5": "bob"}
    await read_model.apply(
        P, [AccountOpenedView(account(i, owner)) for i, owner in reversed(owners.items())], 5
    )

    async def ids(owner: str | None, after: str | None, limit: int) -> list[str]:
        return [a.id for a in await read_model.list_accounts(owner, after, limit)]

    assert await ids("alice", None, 2) == ["acc-1", "acc-3"]
    assert await ids("alice", "acc-3", 2) == ["acc-4"]
    assert await ids("alice", "acc-4", 2) == []
    assert await ids("bob", None, 10) == ["acc-2", "acc-5"]
    assert await ids(None, None, 3) == ["acc-1", "acc-2", "acc-3"]
    assert await ids(None, "acc-3", 3) == ["acc-4", "acc-5"]
    assert await ids("nobody", None, 10) == []
    assert await ids(None, None, 0) == []


async def test_statement_pages_by_version_within_a_time_range(
    read_model: AccountReadModel,
) -> None:
    lines = [movement(v, 10, 10 * (v - 1)) for v in range(2, 12)]  # at T0 + 2h ... T0 + 11h
    other = movement(2, 5, 5, account_id="acc-2")
    await read_model.apply(P, [MovementAdded(m) for m in [*reversed(lines), other]], 11)

    async def versions(
        start: datetime | None, end: datetime | None, after: int, limit: int
    ) -> list[int]:
        return [m.version for m in await read_model.statement("acc-1", start, end, after, limit)]

    assert await versions(None, None, 0, 4) == [2, 3, 4, 5]
    assert await versions(None, None, 5, 4) == [6, 7, 8, 9]
    assert await versions(None, None, 9, 4) == [10, 11]
    assert await versions(None, None, 11, 4) == []
    # start <= occurred_at < end
    assert await versions(T0 + 4 * HOUR, T0 + 7 * HOUR, 0, 10) == [4, 5, 6]
    assert await versions(T0 + 4 * HOUR, T0 + 7 * HOUR, 4, 2) == [5, 6]
    assert await versions(T0 + 10 * HOUR, None, 0, 10) == [10, 11]
    assert await versions(None, T0 + 3 * HOUR + timedelta(microseconds=1), 0, 10) == [2, 3]
    assert await read_model.statement("acc-2", None, None, 0, 10) == [other]


async def test_pending_transfers(read_model: AccountReadModel) -> None:
    await read_model.apply(P, [TransferRequestedView(transfer(f"tr-{n}")) for n in range(1, 5)], 4)
    await read_model.apply(
        P,
        [
            TransferStatusChanged("tr-2", 2, "completed"),
            TransferStatusChanged("tr-4", 2, "failed", "account closed"),
        ],
        6,
    )
    assert sorted(await read_model.pending_transfers()) == ["tr-1", "tr-3"]


async def test_reset_drops_every_view_and_checkpoint(read_model: AccountReadModel) -> None:
    await read_model.apply(P, [*life(), TransferRequestedView(transfer())], 6)

    await read_model.reset()

    assert await read_model.checkpoint(P) == 0
    assert await read_model.get_account("acc-1") is None
    assert await read_model.list_accounts(None, None, 10) == []
    assert await read_model.statement("acc-1", None, None, 0, 10) == []
    assert await read_model.get_transfer("tr-1") is None
    assert await read_model.pending_transfers() == []
    # And it rebuilds from zero.
    await read_model.apply(P, life(), 5)
    assert await read_model.checkpoint(P) == 5
    assert len(await read_model.statement("acc-1", None, None, 0, 10)) == 3
