"""The parts of the live account feeds, each on its own: heartbeats and the shutdown signal
(core.http.sse), the wake-ups, the open-feed limit and the reads of a feed
(handlers.accounts.feed)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from core.http.sse import StreamsClosing, heartbeats
from handlers.accounts.errors import TooManyFeedsError
from handlers.accounts.feed import FeedLimits, FeedWakeups, WatchAccountHandler
from handlers.accounts.messages import WatchAccount
from handlers.accounts.progress import ProjectionProgress
from handlers.accounts.readmodel import AccountChanged, AccountOpenedView, MovementAdded
from handlers.accounts.views import AccountView, Closing, Movement, Watching
from plugins.memory.readmodel import MemoryReadModel
from tests.support import ALICE

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


class Source:
    """An async generator fed by hand, which records whether it was closed."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[int | None] = asyncio.Queue()
        self.closed = False

    async def items(self) -> AsyncIterator[int]:
        try:
            while (item := await self.queue.get()) is not None:
                yield item
        finally:
            self.closed = True


async def test_heartbeats_fill_the_silences_and_pass_every_item_through() -> None:
    source = Source()
    beats = heartbeats(source.items(), 0.01, StreamsClosing())
    assert await anext(beats) is None  # nothing came: a heartbeat
    source.queue.put_nowait(1)
    source.queue.put_nowait(2)
    got = [item for item in [await anext(beats) for _ in range(4)] if item is not None][:2]
    assert got == [1, 2]
    source.queue.put_nowait(None)  # the source ends: so do the heartbeats
    rest = [item async for item in beats]
    assert set(rest) <= {None}
    assert source.closed


async def test_closing_the_heartbeats_closes_the_source() -> None:
    source = Source()
    beats = heartbeats(source.items(), 60.0, StreamsClosing())
    source.queue.put_nowait(7)
    assert await anext(beats) == 7
    await beats.aclose()  # the client went away
    assert source.closed


async def test_the_shutdown_ends_every_stream_and_closes_its_source() -> None:
    closing = StreamsClosing()
    sources = [Source(), Source()]
    streams = [heartbeats(source.items(), 60.0, closing) for source in sources]
    waiting = [asyncio.ensure_future(anext(stream)) for stream in streams]
    await asyncio.sleep(0)
    closing.close_all()
    for pending in waiting:
        with pytest.raises(StopAsyncIteration):
            await pending
    assert all(source.closed for source in sources)
    # A stream opened after the shutdown began ends at once.
    late = Source()
    with pytest.raises(StopAsyncIteration):
        await anext(heartbeats(late.items(), 60.0, closing))


async def test_a_wakeup_taken_before_a_commit_is_set_by_it_and_only_for_its_account() -> None:
    wakeups = FeedWakeups()
    alice, bob = wakeups.ticket("alice"), wakeups.ticket("bob")
    assert wakeups.ticket("alice") is alice  # one per account while someone waits
    wakeups.wake(["alice"])
    assert alice.is_set()
    assert not bob.is_set()
    assert wakeups.ticket("alice") is not alice  # the next wait takes a new one


def test_an_account_nobody_watches_keeps_no_wakeup() -> None:
    wakeups = FeedWakeups()
    wakeups.ticket("alice")  # dropped at once
    gc.collect()
    assert len(wakeups._events) == 0


def test_the_limit_counts_open_feeds_per_caller_and_frees_them_on_close() -> None:
    limits = FeedLimits(per_caller=2)
    with limits.admit("alice"), limits.admit("alice"), limits.admit("bob"):
        with pytest.raises(TooManyFeedsError) as refused, limits.admit("alice"):
            pass
        assert refused.value.limit == 2
        assert limits.open_feeds() == 3
    assert limits.open_feeds() == 0
    with limits.admit("alice"):
        pass


class CountedReads:
    """The in-memory read model, recording each query a feed makes of it."""

    def __init__(self) -> None:
        self.model = MemoryReadModel()
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name != "apply":
            self.reads.append(name)
        return getattr(self.model, name)


def deposit(version: int, balance: int) -> list[Any]:
    line = Movement(f"e{version}", "acc-1", "deposit", 100, balance, version, T0)
    return [MovementAdded(line), AccountChanged("acc-1", version, balance=balance)]


async def test_a_feed_reads_the_read_model_once_each_time_it_looks() -> None:
    """After the access check, each look (the backlog, then each wake) is one query, which
    also tells the feed of the close."""
    model, wakeups = CountedReads(), FeedWakeups()
    opened = AccountView("acc-1", "alice", "EUR", 0, "open", 1, T0)
    await model.apply("p", [AccountOpenedView(opened), *deposit(2, 100)], 1)
    handler = WatchAccountHandler(model, ProjectionProgress(), wakeups, FeedLimits(1))  # type: ignore[arg-type]
    feed = handler.handle(WatchAccount("acc-1", ALICE))

    assert await anext(feed) == Watching("acc-1", "EUR")
    assert [m.version for m in [await anext(feed)]] == [2]
    assert model.reads == ["get_account", "feed_page"]

    waiting = asyncio.ensure_future(anext(feed))
    await asyncio.sleep(0)  # the feed has nothing more: it waits for a wake
    await model.apply("p", deposit(3, 200), 2)
    wakeups.wake(["acc-1"])
    assert (await waiting).version == 3  # type: ignore[union-attr]
    assert model.reads == ["get_account", "feed_page", "feed_page"]

    waiting = asyncio.ensure_future(anext(feed))
    await asyncio.sleep(0)
    await model.apply("p", [AccountChanged("acc-1", 4, status="closed", closed_at=T0)], 3)
    wakeups.wake(["acc-1"])
    assert await waiting == Closing("acc-1", 4, T0)
    with pytest.raises(StopAsyncIteration):
        await anext(feed)
    assert model.reads == ["get_account", "feed_page", "feed_page", "feed_page"]
