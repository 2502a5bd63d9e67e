"""``/accounts``: open, list, read, close, deposit, withdraw, statement, balance at an instant."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from core.http.forwarding import send_or_forward
from core.http.headers import etag
from core.http.request import ApiRequest
from handlers.accounts.messages import (
    CloseAccount,
    Deposit,
    GetAccount,
    GetBalanceAt,
    GetStatement,
    ListAccounts,
    OpenAccount,
    Withdraw,
)
from handlers.accounts.views import AccountView, Receipt
from handlers.accounts.web import examples
from handlers.accounts.web.params import (
    ANY_VERSION,
    DEFAULT_PAGE_SIZE,
    Cursor,
    From,
    Instant,
    Limit,
    MinVersion,
    Owner,
    command_context,
    parse_instant,
)
from handlers.accounts.web.problems import responses
from handlers.accounts.web.schemas import (
    AccountOut,
    AccountPage,
    BalanceOut,
    MovementIn,
    MovementOut,
    OpenAccountIn,
    StatementOut,
    account_out,
    balance_out,
    movement_out,
)

__all__ = ["AccountController"]


def _opened(view: AccountView) -> Response[AccountOut]:
    return Response(
        account_out(view),
        status_code=201,
        headers={"Location": f"/accounts/{view.id}", "ETag": etag(view.version)},
    )


def _closed(_: AccountView) -> Response[None]:
    return Response(None, status_code=204)


def _receipt(receipt: Receipt) -> Response[MovementOut]:
    movement = receipt.movement
    return Response(
        movement_out(movement, receipt.currency),
        status_code=201,
        headers={"ETag": etag(movement.version)},
    )


class AccountController(Controller):
    path = "/accounts"
    tags = ["accounts"]  # noqa: RUF012
    security = [{"BearerAuth": []}]  # noqa: RUF012

    @post(
        "/",
        summary="Open an account",
        description="Only a teller may set `owner`; otherwise the owner is the token's subject. "
        "Honours `Idempotency-Key`.",
        responses=responses(400, 401, 403, 413, 415, 422, 503),
        response_headers=[examples.ETAG, examples.LOCATION],
        operation_class=examples.OPEN,
    )
    async def open_account(
        self, data: JSONBody[OpenAccountIn], request: ApiRequest
    ) -> Response[AccountOut]:
        context = await command_context(request)
        opening = OpenAccount(data.currency, context, data.initial_deposit, data.owner)
        return await send_or_forward(request, opening, _opened)

    @get(
        "/",
        summary="List accounts",
        description="The caller's accounts; a teller sees every account, or one owner's.",
        responses=responses(401, 403, 422, 503),
        operation_class=examples.LIST,
    )
    async def list_accounts(
        self,
        request: ApiRequest,
        owner: Owner = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_PAGE_SIZE,
    ) -> AccountPage:
        principal = await request.principal()
        page = await request.mediator.send(ListAccounts(principal, owner, cursor, limit))
        return AccountPage([account_out(view) for view in page.items], page.next_cursor)

    @get(
        "/{account_id:str}",
        summary="Read an account",
        responses=responses(401, 403, 404, 422, 503),
        response_headers=[examples.ETAG],
        operation_class=examples.READ,
    )
    async def get_account(
        self,
        account_id: FromPath[str],
        request: ApiRequest,
        min_version: MinVersion = ANY_VERSION,
    ) -> Response[AccountOut]:
        principal = await request.principal()
        view = await request.mediator.send(GetAccount(account_id, principal, min_version))
        return Response(account_out(view), headers={"ETag": etag(view.version)})

    @delete(
        "/{account_id:str}",
        summary="Close an account",
        description="Only at a zero balance. Honours `If-Match` and `Idempotency-Key`.",
        responses={
            # The route returns a Response (the owner's, when forwarded): say there is no body.
            204: ResponseSpec(None, description="Request fulfilled, nothing follows"),
            **responses(400, 401, 403, 404, 409, 412, 503),
        },
    )
    async def close_account(self, account_id: FromPath[str], request: ApiRequest) -> Response[None]:
        context = await command_context(request, versioned=True)
        return await send_or_forward(request, CloseAccount(account_id, context), _closed)

    @post(
        "/{account_id:str}/deposits",
        summary="Deposit",
        description="Honours `Idempotency-Key` and `If-Match`.",
        responses=responses(400, 401, 403, 404, 409, 412, 413, 415, 422, 503),
        response_headers=[examples.ETAG],
        operation_class=examples.DEPOSIT,
    )
    async def deposit(
        self,
        account_id: FromPath[str],
        data: JSONBody[MovementIn],
        request: ApiRequest,
    ) -> Response[MovementOut]:
        context = await command_context(request, versioned=True)
        command = Deposit(account_id, data.amount, context, data.description)
        return await send_or_forward(request, command, _receipt)

    @post(
        "/{account_id:str}/withdrawals",
        summary="Withdraw",
        description="Honours `Idempotency-Key` and `If-Match`. More than the balance is "
        "`insufficient-funds` (422) and changes nothing.",
        responses=responses(400, 401, 403, 404, 409, 412, 413, 415, 422, 503),
        response_headers=[examples.ETAG],
        operation_class=examples.WITHDRAW,
    )
    async def withdraw(
        self,
        account_id: FromPath[str],
        data: JSONBody[MovementIn],
        request: ApiRequest,
    ) -> Response[MovementOut]:
        context = await command_context(request, versioned=True)
        command = Withdraw(account_id, data.amount, context, data.description)
        return await send_or_forward(request, command, _receipt)

    @get(
        "/{account_id:str}/transactions",
        summary="Statement",
        description="Movements oldest first, with `from <= occurred_at < to` where given; "
        "pass `next_cursor` back as `cursor` for the next page.",
        responses=responses(401, 403, 404, 422, 503),
        operation_class=examples.STATEMENT,
    )
    async def statement(
        self,
        account_id: FromPath[str],
        request: ApiRequest,
        from_: From = None,
        to: Instant = None,
        cursor: Cursor = None,
        limit: Limit = DEFAULT_PAGE_SIZE,
        min_version: MinVersion = ANY_VERSION,
    ) -> StatementOut:
        principal = await request.principal()
        start, end = parse_instant("from", from_), parse_instant("to", to)
        query = GetStatement(account_id, principal, start, end, cursor, limit, min_version)
        statement = await request.mediator.send(query)
        items = [movement_out(movement, statement.currency) for movement in statement.items]
        return StatementOut(items, statement.next_cursor)

    @get(
        "/{account_id:str}/balance",
        summary="Balance at an instant",
        description="Folded from the account's events up to `at` (default: now).",
        responses=responses(401, 403, 404, 422, 503),
        operation_class=examples.BALANCE,
    )
    async def balance_at(
        self, account_id: FromPath[str], request: ApiRequest, at: Instant = None
    ) -> BalanceOut:
        principal = await request.principal()
        instant = parse_instant("at", at) or datetime.now(UTC)
        query = GetBalanceAt(account_id, principal, instant)
        return balance_out(await request.mediator.send(query))
