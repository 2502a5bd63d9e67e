"""The parts of the live account feeds, each on its own: heartbeats and the shutdown signal
(core.http.sse), the wake-ups and the open-feed limit (handlers.accounts.feed)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest

from core.http.sse import StreamsClosing, heartbeats
from handlers.accounts.errors import TooManyFeedsError
from handlers.accounts.feed import FeedLimits, FeedWakeups


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
