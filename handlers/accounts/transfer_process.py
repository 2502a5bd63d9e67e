"""The transfer process manager: it runs at the instance that writes the transfer's own stream
(``transfer-<id>``), and sends each step to the instance that writes the step's account
(``step_router``): check the source, check the destination, record the request, take from
the source, credit the destination (or give back to the source), record the outcome.

Each step is idempotent by transfer id (an account remembers the transfers it was debited,
credited and refunded for), and the transfer's own stream says how far it got, so running the
steps again after a crash, or after a step's answer was lost, finishes the transfer without
moving money twice. A step whose answer stays unknown leaves the transfer pending; money never
goes back to the source unless the destination refused the credit.
"""

from __future__ import annotations

import logging

from core.errors import ConcurrencyError, StoreUnavailableError
from core.locks import KeyedLocks
from core.placement import Here, StreamPlacement
from core.records import EventMetadata
from core.routing import fresh_id_here, require_here
from handlers.accounts import events as ev
from handlers.accounts.clock import Clock
from handlers.accounts.codec import encode_event
from handlers.accounts.errors import (
    IdempotencyConflictError,
    SameAccountError,
    TransferNotFoundError,
)
from handlers.accounts.ids import command_hash, new_id
from handlers.accounts.messages import ResumeTransfers, Transfer
from handlers.accounts.readmodel import AccountReadModel
from handlers.accounts.repositories import Transfers
from handlers.accounts.resumer import LeftPending
from handlers.accounts.step_router import StepRouter
from handlers.accounts.transfer import TransferState, transfer_stream
from handlers.accounts.transfer_steps import (
    CheckDestination,
    CheckSource,
    Credit,
    Debit,
    Refund,
    Refused,
    refused_error,
)
from handlers.accounts.views import TransferView

__all__ = ["ResumeTransfersHandler", "TransferHandler", "TransferSteps", "transfer_view"]

log = logging.getLogger(__name__)


def transfer_view(state: TransferState) -> TransferView:
    assert state.requested_at is not None
    assert state.status != "new"
    return TransferView(
        id=state.id,
        source=state.source,
        destination=state.destination,
        amount=state.amount,
        currency=state.currency,
        status=state.status,
        version=state.version,
        requested_at=state.requested_at,
        owner=state.owner,
        description=state.description,
        reason=state.reason,
    )


class TransferSteps:
    """The steps after the request is recorded; each may be re-run safely. In this process one
    run of a transfer at a time: a resume and a caller's retry of one transfer take turns."""

    def __init__(
        self, router: StepRouter, transfers: Transfers, clock: Clock, left_pending: LeftPending
    ) -> None:
        self._router = router
        self._transfers = transfers
        self._clock = clock
        self._left_pending = left_pending
        self._locks = KeyedLocks()

    async def run(self, transfer: TransferState) -> TransferState:
        if transfer.status != "pending":
            return transfer
        async with self._locks.hold(transfer.id):
            transfer = await self._transfers.load_committed(transfer_stream(transfer.id))
            if transfer.status != "pending":
                return transfer
            try:
                return await self._run(transfer)
            except StoreUnavailableError:
                self._left_pending.tell()  # finished by a later run
                raise

    async def _run(self, t: TransferState) -> TransferState:
        debit = Debit(t.id, t.source, t.destination, t.amount, t.description)
        debited = await self._router.send(debit)
        if isinstance(debited, Refused):
            return await self._finish(t, ev.TransferFailed(debited.reason))
        credited = await self._router.send(
            Credit(t.id, t.destination, t.source, t.amount, t.description)
        )
        if isinstance(credited, Refused):
            # Only a refusal gives the money back: a credit whose answer was lost may have landed.
            await self._router.send(Refund(t.id, t.source, t.amount, credited.reason))
            return await self._finish(t, ev.TransferFailed(credited.reason))
        return await self._finish(t, ev.TransferCompleted())

    async def _finish(self, transfer: TransferState, event: ev.Event) -> TransferState:
        stream = transfer_stream(transfer.id)
        record = encode_event(
            event,
            stream_id=stream,
            version=transfer.version + 1,
            event_id=new_id(),
            occurred_at=self._clock.now(),
            metadata=EventMetadata(causation_id=stream),
        )
        try:
            return await self._transfers.save(stream, transfer, [record])
        except ConcurrencyError:
            # Someone else (a concurrent resume) finished it first: theirs is the outcome.
            return await self._transfers.load_committed(stream)


class TransferHandler:
    """Runs where the transfer's record is written: the command is routed by it (a keyed
    transfer's id is derived from the caller and the key), or, without a key, it gets a fresh
    id written here."""

    def __init__(
        self,
        router: StepRouter,
        transfers: Transfers,
        steps: TransferSteps,
        clock: Clock,
        placement: StreamPlacement,
    ) -> None:
        self._router = router
        self._transfers = transfers
        self._steps = steps
        self._clock = clock
        self._placement = placement

    async def handle(self, command: Transfer) -> TransferView:
        context = command.context
        actor = context.actor
        fingerprint = command_hash(
            "transfer", command.source, command.destination, command.amount, command.description
        )
        transfer_id = command.keyed_id or fresh_id_here(self._placement, new_id, transfer_stream)
        stream = transfer_stream(transfer_id)
        require_here(self._placement, stream)
        # Committed only: a repeat must not answer from a queued outcome that may still fail.
        existing = await self._transfers.load_committed(stream)
        if existing.status != "new":
            if existing.command_hash != fingerprint:
                raise IdempotencyConflictError(context.command_id or transfer_id)
            return transfer_view(await self._steps.run(existing))

        if command.source == command.destination:
            raise SameAccountError()
        source = await self._router.send(
            CheckSource(
                transfer_id,
                command.source,
                command.destination,
                command.amount,
                actor,
                command.description,
            )
        )
        if isinstance(source, Refused):
            raise refused_error(source)
        destination = await self._router.send(
            CheckDestination(
                transfer_id,
                command.destination,
                command.source,
                source.currency,
                source.amount,
                actor,
                command.description,
            )
        )
        if isinstance(destination, Refused):
            raise refused_error(destination)

        requested = ev.TransferRequested(
            transfer_id,
            source.owner,
            command.source,
            command.destination,
            source.amount,
            source.currency,
            command.description,
        )
        record = encode_event(
            requested,
            stream_id=stream,
            version=1,
            event_id=new_id(),
            occurred_at=self._clock.now(),
            metadata=EventMetadata(
                correlation_id=context.correlation_id,
                actor=actor.subject,
                command_id=context.command_id,
                command_hash=fingerprint,
            ),
        )
        state = await self._transfers.save(stream, existing, [record])
        return transfer_view(await self._steps.run(state))


class ResumeTransfersHandler:
    """Finishes the pending transfers whose record this instance writes; one whose step gets no
    definite answer now is left pending for a later resume, and logged."""

    def __init__(
        self,
        read_model: AccountReadModel,
        transfers: Transfers,
        steps: TransferSteps,
        placement: StreamPlacement,
    ) -> None:
        self._read_model = read_model
        self._transfers = transfers
        self._steps = steps
        self._placement = placement

    async def handle(self, command: ResumeTransfers) -> int:
        resumed = 0
        for transfer_id in await self._read_model.pending_transfers():
            stream = transfer_stream(transfer_id)
            if not isinstance(self._placement.place(stream), Here):
                continue  # its writer resumes it
            state = await self._transfers.load_committed(stream)
            if state.status == "new":
                raise TransferNotFoundError(transfer_id)
            try:
                await self._steps.run(state)
            except StoreUnavailableError as unfinished:
                log.warning("transfer %s left pending: %s", transfer_id, unfinished)
                continue
            resumed += 1
        return resumed
