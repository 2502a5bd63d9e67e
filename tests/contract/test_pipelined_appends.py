"""The ``PipelinedAppends`` contract, run against every backend in conftest: appends queued
without waiting keep their queue order, a chain (the links its appends name) breaks as a
whole, and an append that names no link is checked by its version only."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest

from core.errors import ConcurrencyError
from core.eventsourcing.links import Link
from core.ports import PipelinedAppends
from core.records import EventRecord
from tests.support import event_record as record


def pipelined(store: Any) -> PipelinedAppends:
    assert isinstance(store, PipelinedAppends), f"{type(store).__name__} does not pipeline"
    return store


def new_stream() -> str:
    return f"account-{uuid4().hex}"


async def outcomes(futures: list[asyncio.Future[list[EventRecord]]]) -> list[Any]:
    return list(await asyncio.gather(*futures, return_exceptions=True))


async def test_queued_appends_commit_in_queue_order(event_store: Any) -> None:
    stream = new_stream()
    store = pipelined(event_store)
    # Each expects the version where the previous ends: queued all before any committed.
    links = [Link()]
    for _ in range(49):
        links.append(Link(links[-1]))
    futures = [
        store.enqueue(stream, n - 1, [record(stream, n)], links[n - 1]) for n in range(1, 51)
    ]
    results = await outcomes(futures)
    assert all(not isinstance(result, BaseException) for result in results), results
    assert [result[0].version for result in results] == list(range(1, 51))
    stored = await event_store.read(stream)
    assert [r.version for r in stored] == list(range(1, 51))
    assert [r.event_id for r in stored] == [result[0].event_id for result in results]


async def test_a_failure_in_a_chain_fails_every_append_chained_after_it(event_store: Any) -> None:
    stream = new_stream()
    store = pipelined(event_store)
    first = record(stream, 1)
    await event_store.append(stream, 0, [first])
    links = [Link()]
    for _ in range(3):
        links.append(Link(links[-1]))
    futures = [
        store.enqueue(stream, 1, [record(stream, 2)], links[0]),
        # An event id already stored: this one fails...
        store.enqueue(stream, 2, [record(stream, 3, event_id=first.event_id)], links[1]),
        # ...and so do those queued on top of it, though nothing else is wrong with them.
        store.enqueue(stream, 3, [record(stream, 4)], links[2]),
        store.enqueue(stream, 4, [record(stream, 5), record(stream, 6)], links[3]),
    ]
    results = await outcomes(futures)
    assert not isinstance(results[0], BaseException)
    assert isinstance(results[1], ValueError)
    assert all(isinstance(result, ConcurrencyError) for result in results[2:]), results
    assert [r.version for r in await event_store.read(stream)] == [1, 2]
    assert [link.failed for link in links] == [False, True, True, True]
    # A fresh decision from the stored version goes through.
    again = await store.enqueue(stream, 2, [record(stream, 3)])
    assert [r.version for r in again] == [3]
    assert [r.version for r in await event_store.read(stream)] == [1, 2, 3]


async def test_an_append_chained_to_a_failed_one_fails_even_at_the_version_it_expects(
    event_store: Any,
) -> None:
    """The failed append expected a version the stream had left (another writer moved it on,
    by as many events as it carried): the one chained to it expects the version the stream
    is now at, but it was decided from a state with the failed one in it."""
    stream = new_stream()
    store = pipelined(event_store)
    await event_store.append(stream, 0, [record(stream, 1)])
    first = Link()
    stale = store.enqueue(stream, 0, [record(stream, 1)], first)
    chained = store.enqueue(stream, 1, [record(stream, 2)], Link(first))
    results = await outcomes([stale, chained])
    assert isinstance(results[0], ConcurrencyError)
    assert isinstance(results[1], ConcurrencyError)
    assert [r.version for r in await event_store.read(stream)] == [1]


async def test_an_append_that_names_no_link_is_not_chained_to_a_failed_one(
    event_store: Any,
) -> None:
    """The failed append would have ended at the version the stream is at now (another writer
    got there first): an append decided from what the store holds expects that version and is
    written, queued right behind the failed one or after its failure was known."""
    stream = new_stream()
    store = pipelined(event_store)
    await event_store.append(stream, 0, [record(stream, 1)])
    stale = store.enqueue(stream, 0, [record(stream, 1)], Link())
    fresh = store.enqueue(stream, 1, [record(stream, 2)])
    results = await outcomes([stale, fresh])
    assert isinstance(results[0], ConcurrencyError)
    assert [r.version for r in results[1]] == [2]
    retried = store.enqueue(stream, 1, [record(stream, 2)], Link())
    assert isinstance((await outcomes([retried]))[0], ConcurrencyError)
    later = await store.enqueue(stream, 2, [record(stream, 3)])
    assert [r.version for r in later] == [3]
    assert [r.version for r in await event_store.read(stream)] == [1, 2, 3]


async def test_appends_on_other_streams_are_not_chained(event_store: Any) -> None:
    stream, other = new_stream(), new_stream()
    store = pipelined(event_store)
    failing = Link()
    failed = store.enqueue(stream, 5, [record(stream, 6)], failing)
    unrelated = store.enqueue(other, 0, [record(other, 1)])
    results = await outcomes([failed, unrelated])
    assert isinstance(results[0], ConcurrencyError)
    assert [r.version for r in results[1]] == [1]


async def test_a_queued_append_still_checks_its_records(event_store: Any) -> None:
    stream = new_stream()
    with pytest.raises(ValueError, match="version"):
        await pipelined(event_store).enqueue(stream, 0, [record(stream, 2)])
