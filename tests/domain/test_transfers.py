"""Transfers: a process manager with its own stream, resumable after a crash between steps."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from api.bootstrap import Application
from core.eventsourcing.links import Link
from core.ports import EventStore
from core.records import EventRecord, Snapshot
from handlers.accounts.errors import IdempotencyConflictError
from handlers.accounts.messages import (
    CloseAccount,
    GetAccount,
    GetTransfer,
    OpenAccount,
    ResumeTransfers,
    Transfer,
    Withdraw,
)
from handlers.accounts.repositories import Transfers
from handlers.accounts.transfer import transfer_stream
from handlers.accounts.transfer_process import TransferSteps
from plugins.memory.store import MemoryEventStore
from tests.support import ALICE, BOB, ctx, running, settings_for


async def _balance(app: Application, account_id: str, actor=ALICE) -> int:  # type: ignore[no-untyped-def]
    store = app.container.resolve(EventStore)
    version = await store.stream_version(f"account-{account_id}")
    return (await app.mediator.send(GetAccount(account_id, actor, min_version=version))).balance


async def test_transfer_completes(app: Application) -> None:
    send = app.mediator.send
    source = await send(OpenAccount("EUR", ctx(ALICE), initial_deposit="100.00"))
    destination = await send(OpenAccount("EUR", ctx(BOB)))
    transfer = await send(Transfer(source.id, destination.id, "30.00", ctx(ALICE), "rent"))
    assert (transfer.status, transfer.amount, transfer.reason) == ("completed", 3000, None)
    assert await _balance(app, source.id) == 7000
    assert await _balance(app, destination.id, BOB) == 3000
    seen = await send(GetTransfer(transfer.id, ALICE, min_version=transfer.version))
    assert seen.status == "completed"
    # The destination's owner did not send it, so it is not theirs to see.
    with pytest.raises(Exception, match="not found"):
        await send(GetTransfer(transfer.id, BOB, min_version=transfer.version))


async def test_transfer_is_idempotent_by_command_id(app: Application) -> None:
    send = app.mediator.send
    source = await send(OpenAccount("EUR", ctx(), initial_deposit="100.00"))
    destination = await send(OpenAccount("EUR", ctx()))
    first = await send(Transfer(source.id, destination.id, "10.00", ctx(command_id="t-1")))
    again = await send(Transfer(source.id, destination.id, "10.00", ctx(command_id="t-1")))
    assert again.id == first.id
    assert await _balance(app, source.id) == 9000
    with pytest.raises(IdempotencyConflictError):
        await send(Transfer(source.id, destination.id, "20.00", ctx(command_id="t-1")))


async def test_failed_credit_refunds_the_source(app: Application) -> None:
    """The destination closes between the request and the credit: the source gets its money
    back and the transfer is marked failed with the reason."""
    send = app.mediator.send
    source = await send(OpenAccount("EUR", ctx(), initial_deposit="100.00"))
    destination = await send(OpenAccount("EUR", ctx()))
    transfers = app.container.resolve(Transfers)
    steps = app.container.resolve(TransferSteps)

    # Record the request through the handler's own path but hold the steps back, close the
    # destination, then run the steps.
    original_run = steps.run
    requested = {}

    async def capture(state):  # type: ignore[no-untyped-def]
        requested["state"] = state
        return state

    steps.run = capture  # type: ignore[method-assign]
    try:
        pending = await send(Transfer(source.id, destination.id, "40.00", ctx()))
    finally:
        steps.run = original_run  # type: ignore[method-assign]
    assert pending.status == "pending"
    await send(CloseAccount(destination.id, ctx()))

    finished = await steps.run(requested["state"])
    assert (finished.status, finished.reason) == ("failed", "account_closed")
    assert await _balance(app, source.id) == 10000
    stored = await transfers.load(transfer_stream(pending.id))
    assert stored.status == "failed"


async def test_a_source_emptied_after_the_request_fails_the_transfer_with_a_reason(
    app: Application,
) -> None:
    """The source is emptied between the request and the debit: the transfer is answered
    failed with the reason, and no money moves."""
    send = app.mediator.send
    source = await send(OpenAccount("EUR", ctx(), initial_deposit="100.00"))
    destination = await send(OpenAccount("EUR", ctx()))
    steps = app.container.resolve(TransferSteps)
    original_run = steps.run

    async def empty_the_source_first(state):  # type: ignore[no-untyped-def]
        await send(Withdraw(source.id, "100.00", ctx()))
        return await original_run(state)

    steps.run = empty_the_source_first  # type: ignore[method-assign]
    try:
        transfer = await send(Transfer(source.id, destination.id, "40.00", ctx()))
    finally:
        steps.run = original_run  # type: ignore[method-assign]
    assert (transfer.status, transfer.reason) == ("failed", "insufficient_funds")
    assert await _balance(app, source.id) == 0
    assert await _balance(app, destination.id) == 0


class CrashAfter(MemoryEventStore):
    """A store whose process 'dies' right after the n-th append it accepts."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_after: int | None = None
        self.appends = 0

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[EventRecord]
    ) -> Sequence[EventRecord]:
        stored = await super().append(stream_id, expected_version, events)
        self._accepted()
        return stored

    def enqueue(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[EventRecord],
        link: Link | None = None,
        *,
        head: Snapshot | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        queued = super().enqueue(stream_id, expected_version, events, link, head=head)
        if queued.exception() is None:  # the memory store settles at once
            self._accepted()
        return queued

    def _accepted(self) -> None:
        self.appends += 1
        if self.crash_after is not None and self.appends >= self.crash_after:
            self.crash_after = None
            raise SystemExit("crash")


@pytest.mark.parametrize("crash_at_step", [1, 2, 3])
async def test_a_crash_between_steps_resumes_without_moving_money_twice(
    tmp_path: Path, crash_at_step: int
) -> None:
    """Steps: 1 request recorded, 2 source debited, 3 destination credited, 4 completed."""
    store = CrashAfter()
    settings = settings_for("memory", tmp_path)
    async with running(settings, overrides={EventStore: store}) as app:
        send = app.mediator.send
        source = await send(OpenAccount("EUR", ctx(), initial_deposit="100.00"))
        destination = await send(OpenAccount("EUR", ctx()))
        store.appends = 0
        store.crash_after = crash_at_step
        with pytest.raises(SystemExit):
            await send(Transfer(source.id, destination.id, "25.00", ctx()))

    # A new process on the same store: start-up resumes the pending transfer.
    async with running(settings, overrides={EventStore: store}) as app:
        assert await _balance(app, source.id) == 7500
        assert await _balance(app, destination.id) == 2500
        assert await app.mediator.send(ResumeTransfers()) == 0
        records = await store.read(f"account-{source.id}")
        assert [r.type for r in records].count("TransferDebited") == 1
        records = await store.read(f"account-{destination.id}")
        assert [r.type for r in records].count("TransferCredited") == 1


async def test_transfer_refused_up_front_for_insufficient_funds(app: Application) -> None:
    send = app.mediator.send
    source = await send(OpenAccount("EUR", ctx(), initial_deposit="10.00"))
    destination = await send(OpenAccount("EUR", ctx()))
    await send(Withdraw(source.id, "5.00", ctx()))
    with pytest.raises(Exception, match="less than"):
        await send(Transfer(source.id, destination.id, "6.00", ctx()))
