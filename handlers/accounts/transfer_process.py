"""The transfer process manager: take from the source, credit the destination, complete.

Each step is idempotent by transfer id (an account remembers the transfers it was debited,
credited and refunded for), and the transfer's own stream says how far it got, so running the
steps again after a crash finishes the transfer without moving money twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.errors import ConcurrencyError, OwnedElsewhereError, StreamMovingError
from core.placement import Here, StreamPlacement
from core.records import EventMetadata
from core.routing import fresh_id_here, require_here
from handlers.accounts import events as ev
from handlers.accounts.access import can_access
from handlers.accounts.account import AccountState, account_stream
from handlers.accounts.account_writer import AccountWriter
from handlers.accounts.clock import Clock
from handlers.accounts.codec import encode_event
from handlers.accounts.errors import (
    AccountClosedError,
    AccountNotFoundError,
    CurrencyMismatchError,
    DomainError,
    IdempotencyConflictError,
    InsufficientFundsError,
    SameAccountError,
    TransferAcrossInstancesError,
    TransferNotFoundError,
)
from handlers.accounts.ids import command_hash, derived_id, new_id
from handlers.accounts.messages import ResumeTransfers, Transfer
from handlers.accounts.money import parse_amount
from handlers.accounts.readmodel import AccountReadModel
from handlers.accounts.repositories import Transfers
from handlers.accounts.transfer import TransferState, transfer_stream
from handlers.accounts.views import TransferView

__all__ = [
    "ResumeTransfersHandler",
    "TransferHandler",
    "TransferSteps",
    "require_written_here",
    "transfer_view",
]

log = logging.getLogger(__name__)

STEP_ATTEMPTS = 20


def transfer_view(state: TransferState, owner: str) -> TransferView:
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
        owner=owner,
        description=state.description,
        reason=state.reason,
    )


class TransferSteps:
    """The steps after the request is recorded; each may be re-run safely."""

    def __init__(self, writer: AccountWriter, transfers: Transfers, clock: Clock) -> None:
        self._writer = writer
        self._transfers = transfers
        self._clock = clock

    async def run(self, transfer: TransferState) -> TransferState:
        if transfer.status != "pending":
            return transfer
        cause = transfer_stream(transfer.id)
        try:
            await self._on_account(
                transfer.source,
                lambda a: a.debit_for_transfer(
                    transfer.id, transfer.destination, transfer.amount, transfer.description
                ),
                cause,
            )
        except DomainError as refused:
            return await self._finish(transfer, ev.TransferFailed(_reason(refused)))
        try:
            await self._on_account(
                transfer.destination,
                lambda a: a.credit_for_transfer(
                    transfer.id, transfer.source, transfer.amount, transfer.description
                ),
                cause,
            )
        except DomainError as refused:
            reason = _reason(refused)
            await self._on_account(
                transfer.source,
                lambda a: a.refund_transfer(transfer.id, transfer.amount, reason),
                cause,
            )
            return await self._finish(transfer, ev.TransferFailed(reason))
        return await self._finish(transfer, ev.TransferCompleted())

    async def _on_account(
        self,
        account_id: str,
        decide: Callable[[AccountState], list[ev.Event]],
        cause: str,
    ) -> None:
        for _ in range(STEP_ATTEMPTS):
            async with self._writer.exclusive(account_id):
                # A transfer step decides from the committed state and keeps the account's turn
                # until its own commit: its refusals and its idempotence rest on stored events.
                state = await self._writer.settled(account_id, actor=None)
                events = decide(state)
                if not events:
                    return
                try:
                    committed, _ = await self._writer.queue(state, events, None, None, cause)
                    await committed
                    return
                except ConcurrencyError:
                    continue
        raise ConcurrencyError(account_stream(account_id), -1, -1)

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
            return await self._transfers.load(stream)


def _reason(refused: DomainError) -> str:
    if isinstance(refused, InsufficientFundsError):
        return "insufficient_funds"
    if isinstance(refused, AccountClosedError):
        return "account_closed"
    return type(refused).__name__


def require_written_here(placement: StreamPlacement, stream_id: str) -> None:
    """A transfer's streams must all be written here (its source is: the command is routed by
    it). Checked before anything is read or written; ``StreamMovingError`` while one moves."""
    try:
        require_here(placement, stream_id)
    except OwnedElsewhereError:
        raise TransferAcrossInstancesError(stream_id) from None


class TransferHandler:
    def __init__(
        self,
        writer: AccountWriter,
        transfers: Transfers,
        steps: TransferSteps,
        clock: Clock,
        placement: StreamPlacement,
    ) -> None:
        self._writer = writer
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
        if context.command_id is not None:
            transfer_id = derived_id("transfer", actor.subject, context.command_id)
        else:
            transfer_id = fresh_id_here(self._placement, new_id, transfer_stream)
        stream = transfer_stream(transfer_id)
        require_written_here(self._placement, stream)
        require_written_here(self._placement, account_stream(command.destination))
        existing = await self._transfers.load(stream)
        if existing.status != "new":
            if existing.command_hash != fingerprint:
                raise IdempotencyConflictError(context.command_id or transfer_id)
            source = await self._writer.load(existing.source, actor)
            return transfer_view(await self._steps.run(existing), source.owner)

        if command.source == command.destination:
            raise SameAccountError()
        source = await self._writer.load(command.source, actor)
        amount = parse_amount(command.amount, source.currency)
        # Refuse up front what would fail anyway: the caller gets the rule, not a failed transfer.
        source.debit_for_transfer(transfer_id, command.destination, amount, command.description)
        destination = await self._destination(command, source, transfer_id, amount)

        requested = ev.TransferRequested(
            transfer_id,
            source.owner,
            source.id,
            destination.id,
            amount,
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
        return transfer_view(await self._steps.run(state), source.owner)

    async def _destination(
        self, command: Transfer, source: AccountState, transfer_id: str, amount: int
    ) -> AccountState:
        """The destination, once it is known to take the credit. A transfer may go to anyone's
        account, but a caller who may not see the destination learns nothing of it: whatever
        about it refuses the credit (its currency, its status, its balance) answers
        AccountNotFoundError, as an id that does not exist does. The source's rules are checked
        before this, so their answers cannot tell the two apart either."""
        destination = await self._writer.load(command.destination, actor=None)
        try:
            if destination.currency != source.currency:
                raise CurrencyMismatchError(source.currency, destination.currency)
            destination.credit_for_transfer(transfer_id, source.id, amount, command.description)
        except DomainError:
            if not can_access(command.context.actor, destination.owner):
                raise AccountNotFoundError(command.destination) from None
            raise
        return destination


class ResumeTransfersHandler:
    """Finishes the pending transfers whose record this instance writes; one whose streams are
    written elsewhere now (ownership moved since it started) is left pending for a later
    resume, and logged."""

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
            state = await self._transfers.load(stream)
            if state.status == "new":
                raise TransferNotFoundError(transfer_id)
            try:
                await self._steps.run(state)
            except (OwnedElsewhereError, StreamMovingError) as elsewhere:
                log.warning("transfer %s left pending: %s", transfer_id, elsewhere)
                continue
            resumed += 1
        return resumed
