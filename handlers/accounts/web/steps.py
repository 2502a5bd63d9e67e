"""``POST /internal/transfer-steps``: a transfer's step, sent by the instance that runs the
transfer to the one that writes the step's account (``step_router``). Not for clients: it is
left out of the OpenAPI document, and it takes only messages signed with the deployment's peer
credentials (``core.http.peers``; 401 otherwise). The answer is the step's outcome, 200 even
when the account's rules refuse it; a store that cannot be reached now is ``Unknown``."""

from __future__ import annotations

import logging

import msgspec
from litestar import Controller, Response, post

from core.errors import StoreUnavailableError
from core.http.peers import peer_body
from core.http.request import ApiRequest
from handlers.accounts.errors import InvalidRequestError
from handlers.accounts.step_router import STEP_PATH
from handlers.accounts.step_runner import RunTransferStep
from handlers.accounts.transfer_steps import Outcome, Unknown, decode_step, encode

__all__ = ["TransferStepController"]

log = logging.getLogger(__name__)


class TransferStepController(Controller):
    path = STEP_PATH
    include_in_schema = False

    @post("/", status_code=200)
    async def run_step(self, request: ApiRequest) -> Response[bytes]:
        body = await peer_body(request)
        try:
            step = decode_step(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise InvalidRequestError("body", f"not a transfer step: {error}") from None
        outcome: Outcome
        try:
            outcome = await request.mediator.send(RunTransferStep(step))
        except StoreUnavailableError as error:
            outcome = Unknown(str(error))
        return Response(encode(outcome), status_code=200, media_type="application/json")
