"""The jobs the group-commit writer runs, and how their outcomes reach the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from core.errors import StoreUnavailableError
from core.eventsourcing.links import Link

__all__ = [
    "BatchJob",
    "Item",
    "Job",
    "Outcome",
    "Stop",
    "WrongCount",
    "alone",
    "call_soon",
    "commit_failed",
    "mark_failed",
    "one_autocommit_batch",
    "outcomes_of",
    "rollback",
    "run_items",
    "settle",
    "translate_error",
]

T = TypeVar("T")
P = TypeVar("P")
Job = Callable[[sqlite3.Connection], T]
# A batch job takes the payloads of every job of its kind queued for one transaction, and gives
# each its result or its error, in order: a few statements for the lot instead of a few each.
BatchJob = Callable[[sqlite3.Connection, list[P]], list[T | Exception]]


def translate_error(error: BaseException, path: Path) -> BaseException:
    """A driver failure becomes ``StoreUnavailableError`` (caused by it); a bug (a misused API)
    and the jobs' own typed errors pass through unchanged."""
    if isinstance(error, sqlite3.Error) and not isinstance(
        error, sqlite3.ProgrammingError | sqlite3.InterfaceError
    ):
        unavailable = StoreUnavailableError(f"SQLite database {path} failed: {error}")
        unavailable.__cause__ = error
        return unavailable
    return error


@dataclass(slots=True)
class Item:
    """A payload for a batch job; a plain job is a batch job of its own with no payload."""

    batch: BatchJob[Any, Any]
    payload: Any
    future: asyncio.Future[Any]
    savepoint: bool
    autocommit: bool
    link: Link | None = None  # its place in a chain of appends (links.py), if any


@dataclass(slots=True)
class Stop:
    done: asyncio.Future[None]


# What the writer hands back to the loop for one job: its future, and a result or an error.
Outcome = tuple[asyncio.Future[Any], bool, Any]


class WrongCount(RuntimeError):
    """A batch job gave a number of results other than its number of payloads (a bug)."""


def run_items(connection: sqlite3.Connection, items: list[Item]) -> list[Any]:
    """Run the items' batch job (they share one) on their payloads: one result each."""
    batch = items[0].batch
    results = batch(connection, [item.payload for item in items])
    if len(results) != len(items):
        raise WrongCount(f"{batch!r} gave {len(results)} results for {len(items)}")
    return results


def rollback(connection: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if connection.in_transaction:
            connection.execute("ROLLBACK")


def one_autocommit_batch(items: list[Item]) -> bool:
    first = items[0]
    return first.autocommit and all(item.batch is first.batch for item in items)


def alone(job: Job[T]) -> BatchJob[None, T]:
    """``job`` as a batch job of its own: a new function per job, so never grouped."""

    def run(connection: sqlite3.Connection, payloads: list[None]) -> list[T | Exception]:
        return [job(connection)]

    return run


def settle(outcomes: list[Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the caller gave up (cancelled); the outcome is only logged by SQLite
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def mark_failed(items: list[Item], outcomes: list[Outcome]) -> None:
    """On the writer thread, before the next batch: the chains of the items that failed break,
    so that an append queued after one of them is refused (links.py)."""
    failed = {id(future) for future, ok, _ in outcomes if not ok}
    for item in items:
        if item.link is not None and id(item.future) in failed:
            item.link.failed = True


def call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    # The loop may be gone when a store is dropped without ``close``; nobody is waiting then.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def outcomes_of(items: list[Item], results: list[Any], path: Path) -> list[Outcome]:
    """Each item's outcome from its batch job's result (an error is translated)."""
    return [
        (item.future, False, translate_error(result, path))
        if isinstance(result, Exception)
        else (item.future, True, result)
        for item, result in zip(items, results, strict=True)
    ]


def commit_failed(error: BaseException, path: Path) -> StoreUnavailableError:
    """The error for every job of a batch whose commit failed."""
    failure = StoreUnavailableError(
        f"SQLite database {path} did not commit; nothing of this batch was written: {error}"
    )
    failure.__cause__ = error
    return failure
