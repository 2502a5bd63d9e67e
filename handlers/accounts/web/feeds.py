"""``GET /accounts/{id}/events``: the account's movements as Server-Sent Events, live.

Each movement is one ``movement`` event whose data is the statement's movement JSON and whose
``id`` is the account's version; a closed account's feed ends with a ``closed`` event. A client
resumes with ``Last-Event-ID`` (browsers send it on a reconnect) or ``?after=N``: it gets every
movement after version N, then the live ones, none twice. A comment line goes out after 15 s
without an event, for proxies that close idle connections.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Final, TypeAlias

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from core.http.request import ApiRequest
from core.http.sse import heartbeats, resume_after, streams_closing
from handlers.accounts.messages import WatchAccount
from handlers.accounts.views import Closing, FeedItem, Movement, Watching
from handlers.accounts.web import examples
from handlers.accounts.web.params import Version
from handlers.accounts.web.problems import responses
from handlers.accounts.web.schemas import movement_out

__all__ = ["HEARTBEAT_SECONDS", "FeedController"]

HEARTBEAT_SECONDS: Final = 15.0
RETRY_MILLISECONDS: Final = 1000  # how soon a browser reconnects after the stream ends

After: TypeAlias = Annotated[
    Version | None,
    QueryParameter(
        description="Send the movements after this version first (`Last-Event-ID` wins)",
        schema_extra=Version.schema(),
    ),
]


class ClosedOut(msgspec.Struct, frozen=True):
    account: str
    version: int
    closed_at: str | None


def _events(
    opened: Watching, feed: AsyncIterator[FeedItem | None]
) -> AsyncIterator[ServerSentEventMessage]:
    async def events() -> AsyncIterator[ServerSentEventMessage]:
        yield ServerSentEventMessage(
            comment=f"account {opened.account}", retry=RETRY_MILLISECONDS, data=None
        )
        async for item in feed:
            if item is None:
                yield ServerSentEventMessage(comment="keep-alive", data=None)
            elif isinstance(item, Movement):
                data = msgspec.json.encode(movement_out(item, opened.currency)).decode()
                yield ServerSentEventMessage(data=data, event="movement", id=item.version)
            elif isinstance(item, Closing):
                closed_at = item.closed_at.isoformat() if item.closed_at else None
                closed = msgspec.json.encode(ClosedOut(item.account, item.version, closed_at))
                yield ServerSentEventMessage(data=closed.decode(), event="closed", id=item.version)

    return events()


class FeedController(Controller):
    path = "/accounts"
    tags = ["accounts"]  # noqa: RUF012

    @get(
        "/{account_id:str}/events",
        summary="Watch an account's movements (Server-Sent Events)",
        description=(
            "A `text/event-stream`: one `movement` event per movement (the statement's JSON; "
            "`id` is the account's version), live, and `closed` when the account closes. "
            "Resume with `Last-Event-ID` or `after`."
        ),
        responses=responses(401, 403, 404, 429, 503),
        operation_class=examples.FEED,
    )
    async def events(
        self, account_id: FromPath[str], request: ApiRequest, after: After = None
    ) -> ServerSentEvent:
        principal = await request.principal()
        start = resume_after(request, after)
        feed = request.mediator.stream(WatchAccount(account_id, principal, start))
        # The checks (the caller's access, the account, the open-feed limit) run before the
        # first item: a refusal is a problem document, not a stream that ends at once.
        opened = await anext(feed)
        assert isinstance(opened, Watching)
        live = heartbeats(feed, HEARTBEAT_SECONDS, streams_closing(request))
        return ServerSentEvent(
            _events(opened, live), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
