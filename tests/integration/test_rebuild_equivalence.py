"""A rebuilt generation answers every query as the live projection did, for every kind of event.

The live projector writes batch by batch through the read model's ``apply``; a rebuild writes
through its generation build (for SQLite: accounts and transfers folded in memory, statement lines
in multi-row inserts grouped by the texts they lack). Both start from the one domain projection;
this history holds each event the projection knows, an event in an old schema, and texts that
could be taken for a missing one (empty, "0"), quoted or not ASCII."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import msgspec

from api.bootstrap import Application
from core.config import Settings
from core.records import EventMetadata, EventRecord
from handlers.accounts import events as ev
from handlers.accounts.codec import encode_event
from handlers.accounts.generations import Generations
from handlers.accounts.ids import new_id
from handlers.accounts.projection import PROJECTION
from tests.support import running

T0 = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
TEXTS = (None, "", "0", 'quo"te \\ é 🎉\n')


class History:
    """Appends events straight to the store, each stream's in order, a microsecond apart."""

    def __init__(self, app: Application) -> None:
        self._store = app.backends["event_store"]
        self._versions: dict[str, int] = {}
        self._at = T0
        self.events = 0

    async def append(self, stream: str, *events: ev.Event) -> None:
        records = [self._record(stream, partial(encode_event, event)) for event in events]
        await self._append(stream, records)

    async def append_old_deposit(self, account: str, amount: int, after: int, note: str) -> None:
        """A deposit in schema 1, whose text was called ``note``: the projection upcasts it."""
        data = {"type": "MoneyDeposited", "amount": amount, "balance_after": after, "note": note}

        def old(**fields: Any) -> EventRecord:
            return EventRecord(
                type="MoneyDeposited", schema=1, data=msgspec.Raw(msgspec.json.encode(data)),
                **fields,
            )  # fmt: skip

        await self._append(f"account-{account}", [self._record(f"account-{account}", old)])

    def _record(self, stream: str, build: Any) -> EventRecord:
        version = self._versions.get(stream, 0) + 1
        self._versions[stream] = version
        self._at += timedelta(microseconds=1_001)
        record: EventRecord = build(
            stream_id=stream, version=version, event_id=new_id(), occurred_at=self._at,
            metadata=EventMetadata(actor="history"),
        )  # fmt: skip
        return record

    async def _append(self, stream: str, records: list[EventRecord]) -> None:
        await self._store.append(stream, records[0].version - 1, records)
        self.events += len(records)


async def write_history(app: Application) -> tuple[list[str], list[str], int]:
    """Every kind of event: openings, deposits (one in schema 1), withdrawals, transfers that
    complete, fail with a refund, and stay pending, and a close. Returns the account and
    transfer ids, and the events written."""
    a, b, c, d = (new_id() for _ in range(4))
    done, refunded, pending = (new_id() for _ in range(3))
    history = History(app)
    for account, owner in ((a, "alice"), (b, "bob"), (c, "carol"), (d, "alice")):
        await history.append(f"account-{account}", ev.AccountOpened(account, owner, "EUR"))
    balance = 0
    for amount, text in zip((10_000, 250, 1, 7), TEXTS, strict=True):
        balance += amount
        await history.append(f"account-{a}", ev.MoneyDeposited(amount, balance, text))
    await history.append_old_deposit(a, 5, balance + 5, "from schema 1")
    balance += 5
    for amount, text in zip((100, 3), TEXTS[1:3], strict=True):
        balance -= amount
        await history.append(f"account-{a}", ev.MoneyWithdrawn(amount, balance, text))
    await history.append(
        f"transfer-{done}", ev.TransferRequested(done, "alice", a, b, 2_000, "EUR", "rent")
    )
    balance -= 2_000
    await history.append(f"account-{a}", ev.TransferDebited(done, b, 2_000, balance, "rent"))
    await history.append(f"account-{b}", ev.TransferCredited(done, a, 2_000, 2_000, "rent"))
    await history.append(f"transfer-{done}", ev.TransferCompleted())
    await history.append(f"account-{c}", ev.AccountClosed())
    await history.append(
        f"transfer-{refunded}", ev.TransferRequested(refunded, "alice", a, c, 300, "EUR", "")
    )
    await history.append(f"account-{a}", ev.TransferDebited(refunded, c, 300, balance - 300, ""))
    await history.append(
        f"account-{a}", ev.TransferRefunded(refunded, 300, balance, "account_closed")
    )
    await history.append(f"transfer-{refunded}", ev.TransferFailed("account_closed"))
    await history.append(
        f"transfer-{pending}", ev.TransferRequested(pending, "bob", b, d, 1, "EUR", TEXTS[3])
    )
    return [a, b, c, d], [done, refunded, pending], history.events


async def project_everything(app: Application, events: int) -> None:
    """The live projector applies the whole history (a Kafka consumer takes a few seconds to
    get its partitions, and ``catch_up`` stops at the first quiet 50 ms)."""
    applied = 0
    for _ in range(200):
        applied += await app.projector.catch_up()
        if applied >= events:
            return
    raise AssertionError(f"the live projector applied {applied} of {events} events")


async def answers(app: Application, accounts: list[str], transfers: list[str]) -> dict[str, Any]:
    read_model = app.backends["read_model"]
    return {
        "accounts": [await read_model.get_account(account) for account in accounts],
        "statements": [
            await read_model.statement(account, None, None, 0, 100) for account in accounts
        ],
        "alice's": await read_model.list_accounts("alice", None, 100),
        "all": await read_model.list_accounts(None, None, 100),
        "transfers": [await read_model.get_transfer(transfer) for transfer in transfers],
        "pending": await read_model.pending_transfers(),
    }


async def test_a_rebuilt_generation_answers_as_the_live_projection_did(settings: Settings) -> None:
    async with running(settings, run_projector=False) as app:
        accounts, transfers, events = await write_history(app)
        await project_everything(app, events)
        live = await answers(app, accounts, transfers)
        lines = [line for statement in live["statements"] for line in statement]
        assert {line.kind for line in lines} == {
            "deposit", "withdrawal", "transfer_out", "transfer_in", "transfer_refund",
        }  # fmt: skip
        assert {line.description for line in lines} >= {*TEXTS, "from schema 1", "rent"}
        assert [view.status for view in live["accounts"]] == ["open", "open", "closed", "open"]
        assert [view.status for view in live["transfers"]] == ["completed", "failed", "pending"]
        read_model = app.backends["read_model"]
        live_checkpoint = await read_model.checkpoint(PROJECTION)

        assert await app.projector.rebuild() == events

        assert isinstance(read_model, Generations)
        assert await read_model.live_generation() == 1
        assert await answers(app, accounts, transfers) == live
        assert await read_model.checkpoint(PROJECTION) == live_checkpoint
