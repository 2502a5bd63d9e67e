"""The ``PipelinedAppends`` contract, run against every backend in conftest: appends queued
without waiting keep their queue order, and a chain breaks as a whole."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest

from core.errors import ConcurrencyError
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
    futures = [store.enqueue(stream, n - 1, [record(stream, n)]) for n in range(1, 51)]
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
    futures = [
        store.enqueue(stream, 1, [record(stream, 2)]),
        # An event id already stored: this one fails...
        store.enqueue(stream, 2, [record(stream, 3, event_id=first.event_id)]),
        # ...and so do those queued on top of it, though nothing else is wrong with them.
        store.enqueue(stream, 3, [record(stream, 4)]),
        store.enqueue(stream, 4, [record(stream, 5), record(stream, 6)]),
    ]
    results = await outcomes(futures)
    assert not isinstance(results[0], BaseException)
    assert isinstance(results[1], ValueError)
    assert all(isinstance(result, ConcurrencyError) for result in results[2:]), results
    assert [r.version for r in await event_store.read(stream)] == [1, 2]
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
    stale = store.enqueue(stream, 0, [record(stream, 1)])
    chained = store.enqueue(stream, 1, [record(stream, 2)])
    results = await outcomes([stale, chained])
    assert isinstance(results[0], ConcurrencyError)
    assert isinstance(results[1], ConcurrencyError)
    assert [r.version for r in await event_store.read(stream)] == [1]


async def test_appends_on_other_streams_are_not_chained(event_store: Any) -> None:
    stream, other = new_stream(), new_stream()
    store = pipelined(event_store)
    failing = store.enqueue(stream, 5, [record(stream, 6)])
    unrelated = store.enqueue(other, 0, [record(other, 1)])
    results = await outcomes([failing, unrelated])
    assert isinstance(results[0], ConcurrencyError)
    assert [r.version for r in results[1]] == [1]


async def test_a_queued_append_still_checks_its_records(event_store: Any) -> None:
    stream = new_stream()
    with pytest.raises(ValueError, match="version"):
        await pipelined(event_store).enqueue(stream, 0, [record(stream, 2)])
