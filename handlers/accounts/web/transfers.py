"""``/transfers``: move money between two accounts of one currency, and read a transfer."""

from __future__ import annotations

from litestar import Controller, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from core.http.forwarding import send_or_forward
from core.http.request import ApiRequest
from handlers.accounts.messages import GetTransfer, Transfer
from handlers.accounts.views import TransferView
from handlers.accounts.web import examples
from handlers.accounts.web.params import ANY_VERSION, MinVersion, command_context
from handlers.accounts.web.problems import responses
from handlers.accounts.web.schemas import TransferIn, TransferOut, transfer_out

__all__ = ["TransferController"]


def _requested(view: TransferView) -> Response[TransferOut]:
    return Response(
        transfer_out(view),
        status_code=202 if view.status == "pending" else 201,
        headers={"Location": f"/transfers/{view.id}"},
    )


class TransferController(Controller):
    path = "/transfers"
    tags = ["transfers"]  # noqa: RUF012
    security = [{"BearerAuth": []}]  # noqa: RUF012

    @post(
        "/",
        summary="Transfer",
        description="Only from the caller's own accounts (a teller: any). 201 once the transfer "
        "completed or failed (see `reason`), 202 while it is still pending. Honours "
        "`Idempotency-Key`.",
        responses={
            202: ResponseSpec(TransferOut, description="Accepted, still pending"),
            **responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
        },
        response_headers=[examples.TRANSFER_LOCATION],
        operation_class=examples.TRANSFER,
    )
    async def transfer(
        self, data: JSONBody[TransferIn], request: ApiRequest
    ) -> Response[TransferOut]:
        context = await command_context(request)
        command = Transfer(data.source, data.destination, data.amount, context, data.description)
        return await send_or_forward(request, command, _requested)

    @get(
        "/{transfer_id:str}",
        summary="Read a transfer",
        responses=responses(401, 403, 404, 422, 503),
        operation_class=examples.TRANSFER_READ,
    )
    async def get_transfer(
        self,
        transfer_id: FromPath[str],
        request: ApiRequest,
        min_version: MinVersion = ANY_VERSION,
    ) -> TransferOut:
        principal = await request.principal()
        query = GetTransfer(transfer_id, principal, min_version)
        return transfer_out(await request.mediator.send(query))
