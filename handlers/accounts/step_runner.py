"""Running a transfer's step at the instance that writes its account (``transfer_steps``).

``StepRunner.run`` is the same whether the step was decided here or arrived from the instance
that runs the transfer (``RunTransferStep``, the internal endpoint's request): the account's
rules refuse it (``Refused``), or it is done; a step for an account this instance does not
write (any more) is ``Unknown``, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from core.errors import ConcurrencyError, OwnedElsewhereError, StreamMovingError
from core.messages import Request
from core.placement import StreamPlacement
from core.routing import require_here
from handlers.accounts import events as ev
from handlers.accounts.access import can_access
from handlers.accounts.account import AccountState, account_stream
from handlers.accounts.account_writer import AccountWriter
from handlers.accounts.errors import AccountNotFoundError, CurrencyMismatchError, DomainError
from handlers.accounts.money import parse_amount
from handlers.accounts.transfer_steps import (
    CheckDestination,
    CheckSource,
    Credit,
    Debit,
    Done,
    Outcome,
    Refund,
    Step,
    Unknown,
    refusal,
    step_stream,
)

__all__ = ["RunTransferStep", "RunTransferStepHandler", "StepRunner"]

# Attempts of one movement that keeps losing optimistic-concurrency races to another process.
MOVE_ATTEMPTS: Final = 20
_DONE: Final = Done()


class StepRunner:
    def __init__(self, writer: AccountWriter, placement: StreamPlacement) -> None:
        self._writer = writer
        self._placement = placement

    async def run(self, step: Step) -> Outcome:
        """The step's outcome. A store that cannot be reached raises ``StoreUnavailableError``
        (the internal endpoint answers it as ``Unknown``)."""
        try:
            require_here(self._placement, step_stream(step))
            return await self._run(step)
        except DomainError as refused:
            return refusal(refused)
        except (OwnedElsewhereError, StreamMovingError) as elsewhere:
            return Unknown(str(elsewhere))

    async def _run(self, step: Step) -> Outcome:
        match step:
            case CheckSource():
                return await self._check_source(step)
            case CheckDestination():
                return await self._check_destination(step)
            case Debit(transfer_id=t, destination=d, amount=a, description=text):
                return await self._move(step, lambda s: s.debit_for_transfer(t, d, a, text))
            case Credit(transfer_id=t, source=source, amount=a, description=text):
                return await self._move(step, lambda s: s.credit_for_transfer(t, source, a, text))
            case Refund(transfer_id=t, amount=a, reason=reason):
                return await self._move(step, lambda s: s.refund_transfer(t, a, reason))

    async def _check_source(self, step: CheckSource) -> Done:
        source = await self._writer.load(step.account_id, step.caller)
        amount = parse_amount(step.amount, source.currency)
        # Refuse up front what would fail anyway: the caller gets the rule, not a failed transfer.
        source.debit_for_transfer(step.transfer_id, step.destination, amount, step.description)
        return Done(owner=source.owner, currency=source.currency, amount=amount)

    async def _check_destination(self, step: CheckDestination) -> Done:
        """The destination, once it is known to take the credit. A transfer may go to anyone's
        account, but a caller who may not see the destination learns nothing of it: whatever
        about it refuses the credit (its currency, its status, its balance) answers
        AccountNotFoundError, as an id that does not exist does. The source's rules are checked
        before this, so their answers cannot tell the two apart either."""
        destination = await self._writer.load(step.account_id, actor=None)
        try:
            if destination.currency != step.currency:
                raise CurrencyMismatchError(step.currency, destination.currency)
            destination.credit_for_transfer(
                step.transfer_id, step.source, step.amount, step.description
            )
        except DomainError:
            if not can_access(step.caller, destination.owner):
                raise AccountNotFoundError(step.account_id) from None
            raise
        return _DONE

    async def _move(
        self, step: Debit | Credit | Refund, decide: Callable[[AccountState], list[ev.Event]]
    ) -> Outcome:
        cause = f"transfer-{step.transfer_id}"
        for _ in range(MOVE_ATTEMPTS):
            async with self._writer.exclusive(step.account_id):
                # A step decides from the committed state and keeps the account's turn until its
                # own commit: its refusals and its idempotence rest on stored events.
                state = await self._writer.settled(step.account_id, actor=None)
                events = decide(state)
                if not events:
                    return _DONE
                try:
                    committed, _ = await self._writer.queue(state, events, None, None, cause)
                    await committed
                    return _DONE
                except ConcurrencyError:
                    continue
        return Unknown(f"{account_stream(step.account_id)} kept changing under the step")


@dataclass(frozen=True, slots=True)
class RunTransferStep(Request[Outcome]):
    """A step sent by the instance that runs a transfer to the one that writes its account."""

    step: Step


class RunTransferStepHandler:
    def __init__(self, runner: StepRunner) -> None:
        self._runner = runner

    async def handle(self, request: RunTransferStep) -> Outcome:
        return await self._runner.run(request.step)
