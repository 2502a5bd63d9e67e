"""Live account feeds: the backlog from the read model, then each movement as the projection
commits it.

A feed reads the read model only, always "the movements after the last version sent", so it
never skips or repeats one at the seam between the backlog and the live part: the projection
applies an account's events in version order, and each batch in one transaction. Each look is one
read (``AccountReadModel.feed_page``), which also brings the account's close. What makes it
live is a wake-up, not the data: the projector publishes ``EventsProjected`` after each commit,
and ``WakeFeeds`` wakes the feeds of the accounts in it. A feed also looks again every
``POLL_SECONDS`` without one, which is how it sees movements projected by another process (a
projector of its own, or another instance's).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Final

from core.records import EventRecord
from handlers.accounts.errors import TooManyFeedsError
from handlers.accounts.messages import GetAccount, WatchAccount
from handlers.accounts.notifications import EventsProjected
from handlers.accounts.progress import ProjectionProgress
from handlers.accounts.query_handlers import GetAccountHandler
from handlers.accounts.readmodel import AccountReadModel
from handlers.accounts.views import FeedItem, Watching

__all__ = ["FeedLimits", "FeedWakeups", "WakeFeeds", "WatchAccountHandler"]

POLL_SECONDS: Final = 1.0
PAGE: Final = 200
_ACCOUNT_PREFIX: Final = "account-"


class FeedWakeups:
    """One wake-up per watched account. A feed takes its ticket before it reads, so a commit
    that lands after the read wakes it: no movement waits for the next poll."""

    def __init__(self) -> None:
        # Held by the waiting feeds only: an account nobody watches keeps no entry.
        self._events: weakref.WeakValueDictionary[str, asyncio.Event] = (
            weakref.WeakValueDictionary()
        )

    def ticket(self, account_id: str) -> asyncio.Event:
        event = self._events.get(account_id)
        if event is None:
            event = asyncio.Event()
            self._events[account_id] = event
        return event

    def wake(self, account_ids: Iterable[str]) -> None:
        for account_id in account_ids:
            event = self._events.pop(account_id, None)
            if event is not None:
                event.set()


class FeedLimits:
    """At most ``per_caller`` open feeds per caller (token subject)."""

    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._open: Counter[str] = Counter()

    @contextlib.contextmanager
    def admit(self, caller: str) -> Iterator[None]:
        if self._open[caller] >= self.per_caller:
            raise TooManyFeedsError(caller, self.per_caller)
        self._open[caller] += 1
        try:
            yield
        finally:
            self._open[caller] -= 1
            if self._open[caller] <= 0:
                del self._open[caller]

    def open_feeds(self) -> int:
        return sum(self._open.values())


class WakeFeeds:
    """Notification handler: wakes the feeds of the accounts a projection batch touched."""

    def __init__(self, wakeups: FeedWakeups) -> None:
        self._wakeups = wakeups

    async def handle(self, notification: EventsProjected) -> None:
        self._wakeups.wake(_accounts(notification.events))


def _accounts(events: Iterable[EventRecord]) -> set[str]:
    return {
        event.stream_id.removeprefix(_ACCOUNT_PREFIX)
        for event in events
        if event.stream_id.startswith(_ACCOUNT_PREFIX)
    }


class WatchAccountHandler:
    """Stream handler of ``WatchAccount``: the same access rules as the statement (another
    customer's account is not found), then the feed."""

    def __init__(
        self,
        read_model: AccountReadModel,
        progress: ProjectionProgress,
        wakeups: FeedWakeups,
        limits: FeedLimits,
    ) -> None:
        self._read_model = read_model
        self._progress = progress
        self._wakeups = wakeups
        self._limits = limits

    async def handle(self, request: WatchAccount) -> AsyncIterator[FeedItem]:
        accounts = GetAccountHandler(self._read_model, self._progress)
        # min_version 1: an account opened a moment ago is waited for briefly, not "not found".
        account = await accounts.handle(GetAccount(request.account_id, request.actor, 1))
        with self._limits.admit(request.actor.subject):
            yield Watching(account.id, account.currency)
            after = request.after
            while True:
                wakeup = self._wakeups.ticket(account.id)
                page = await self._read_model.feed_page(account.id, after, PAGE)
                for movement in page.movements:
                    yield movement
                    after = movement.version
                if len(page.movements) == PAGE:
                    continue
                if page.closing is not None:
                    if page.closing.version > after:
                        yield page.closing
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), POLL_SECONDS)
