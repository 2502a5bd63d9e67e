"""Where a transfer's step runs: here when this instance writes its account, else sent to the
instance that does (``core.peers.PeerChannel``, to the internal endpoint ``STEP_PATH``).

A step whose outcome is unknown (the owner did not answer, answered ``Unknown``, or the
account is changing hands) is sent again, to wherever the account is written by then, up to
``STEP_ATTEMPTS`` times: every step is idempotent by transfer id, so a step that was executed
and whose answer was lost moves no money twice. After that ``TransferStepUnknownError`` (503):
the transfer stays as it is, pending, and is finished by a later run (the caller's retry with
the same key, or the resume of pending transfers).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import msgspec

from core.peers import NoPeerCredentialsError, PeerChannel, PeerUnreachableError
from core.placement import Elsewhere, Here, StreamPlacement
from handlers.accounts.errors import TransferAcrossInstancesError, TransferStepUnknownError
from handlers.accounts.step_runner import StepRunner
from handlers.accounts.transfer_steps import (
    Done,
    Outcome,
    Refused,
    Step,
    Unknown,
    decode_outcome,
    encode,
    step_stream,
)

__all__ = ["STEP_ATTEMPTS", "STEP_PATH", "StepRouter"]

log = logging.getLogger(__name__)

STEP_PATH: Final = "/internal/transfer-steps"
STEP_ATTEMPTS: Final = 5
_FIRST_PAUSE: Final = 0.1  # doubled after each unknown outcome
_LONGEST_PAUSE: Final = 0.8


class StepRouter:
    def __init__(self, runner: StepRunner, placement: StreamPlacement, peers: PeerChannel) -> None:
        self._runner = runner
        self._placement = placement
        self._peers = peers
        self.sent = 0  # steps sent to another instance (and answered)

    async def send(self, step: Step) -> Done | Refused:
        """The step's outcome, from the instance that writes its account."""
        stream = step_stream(step)
        pause = _FIRST_PAUSE
        why = ""
        for attempt in range(STEP_ATTEMPTS):
            if attempt:
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)
            where = self._placement.place(stream)
            if isinstance(where, Here):
                outcome = await self._runner.run(step)
            elif isinstance(where, Elsewhere):
                outcome = await self._remote(where.url, step)
            else:
                outcome = Unknown(f"stream {stream!r} is changing hands")
                pause = min(max(pause, where.retry_after), _LONGEST_PAUSE)
            if not isinstance(outcome, Unknown):
                return outcome
            why = outcome.why
            log.info("transfer %s: %s unknown (%s)", step.transfer_id, type(step).__name__, why)
        raise TransferStepUnknownError(step.transfer_id, stream, why)

    async def _remote(self, url: str, step: Step) -> Outcome:
        try:
            answer = await self._peers.call(url, STEP_PATH, encode(step))
        except NoPeerCredentialsError:
            raise TransferAcrossInstancesError(step_stream(step)) from None
        except PeerUnreachableError as error:
            return Unknown(str(error))
        try:
            outcome = decode_outcome(answer)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            return Unknown(f"the instance at {url} answered something else: {error}")
        self.sent += 1
        return outcome
