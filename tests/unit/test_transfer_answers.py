"""A transfer's answer says what is stored: a repeat that arrives while the first run's outcome
is still being committed waits for that commit, and if it fails, finishes the transfer itself
rather than answer with an outcome that was never written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from core.errors import StoreUnavailableError
from core.eventsourcing.links import Link
from core.ports import EventStore
from core.records import EventRecord, Snapshot
from handlers.accounts import messages as msg
from handlers.accounts.ids import derived_id
from handlers.accounts.transfer import transfer_stream
from tests.held_store import HeldStore
from tests.support import ALICE, ctx, running, settings_for


class HoldsFirstOutcome(HeldStore):
    """Holds the first append that records a transfer's outcome; every other one goes through."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes_held = 0

    def enqueue(
        self,
        stream_id: str,
        expected_version: int,
        events: Sequence[EventRecord],
        link: Link | None = None,
        *,
        head: Snapshot | None = None,
    ) -> asyncio.Future[list[EventRecord]]:
        outcome = any(e.type in ("TransferCompleted", "TransferFailed") for e in events)
        self.holding = outcome and self.outcomes_held == 0
        self.outcomes_held += self.holding
        return super().enqueue(stream_id, expected_version, events, link, head=head)


async def _turns(task: asyncio.Task[object], turns: int = 500) -> None:
    """Let the loop run until ``task`` is done or has nothing left to do but wait."""
    for _ in range(turns):
        if task.done():
            return
        await asyncio.sleep(0)


async def test_a_repeat_never_answers_an_outcome_whose_commit_then_fails(tmp_path: Path) -> None:
    store = HoldsFirstOutcome()
    async with running(settings_for("memory", tmp_path), overrides={EventStore: store}) as app:
        send = app.mediator.send
        source = await send(msg.OpenAccount("EUR", ctx(), initial_deposit="10.00"))
        destination = await send(msg.OpenAccount("EUR", ctx()))
        transfer = msg.Transfer(source.id, destination.id, "4.00", ctx(command_id="t-1"))
        stream = transfer_stream(derived_id("transfer", ALICE.subject, "t-1"))

        first = asyncio.ensure_future(send(transfer))
        while not store.queued:
            await _turns(first, 1)
        repeat = asyncio.ensure_future(send(transfer))
        await _turns(repeat)
        store.release(StoreUnavailableError("the outcome's commit failed"))
        answered = await repeat

        recorded = [r.type for r in await store.read(stream)]
        assert answered.status == "completed"
        assert recorded == ["TransferRequested", "TransferCompleted"]
        assert isinstance(first.exception(), StoreUnavailableError)
