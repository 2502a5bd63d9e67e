"""What every bench shares: the workload sizes, a result row, timing helpers, and an application
on the embedded default (SQLite) in a data directory of its own.

The application is built with the project's composition root (``api.bootstrap``) exactly as the
server builds it, with the real JWT authenticator (in-process benches never authenticate: their
commands carry a ``Principal`` as the HTTP layer would after checking the token).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import secrets
import socket
import statistics
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from api.bootstrap import Application, bootstrap
from api.runtime import apply_runtime, freeze_startup_objects
from core.config import Settings
from core.ports import Principal
from handlers.accounts.messages import CommandContext, Deposit, OpenAccount

__all__ = [
    "JWT_SECRET",
    "READ_WRITE",
    "Outcome",
    "Row",
    "Sizes",
    "Status",
    "app_on",
    "at_least_text",
    "by_round",
    "ctx",
    "free_port",
    "median",
    "open_accounts",
    "run_async",
    "run_concurrently",
    "server_runtime",
    "sizes_for",
    "sqlite_settings",
]

Status = Literal["pass", "miss", "info", "not measured"]
READ_WRITE: Final = frozenset({"accounts:read", "accounts:write"})
T = TypeVar("T")
# One secret per bench run, shared by the servers and the token minting.
JWT_SECRET: Final = secrets.token_urlsafe(48)


@dataclass(frozen=True, slots=True)
class Sizes:
    """The workload of one run; ``quick`` is a smoke test that finishes in seconds."""

    quick: bool
    rounds: int
    # 4. mediator
    mediator_calls: int
    # 2. appends
    accounts: int
    deposits: int
    in_flight: int
    library_threads: int
    # 3. aggregate load
    load_lengths: tuple[int, ...]
    loads_per_length: int
    # 5. lag and rebuild
    lag_seconds: float
    # Full-speed deposits on each server-backed backend before its first measure (bench.warmup)
    server_warmup_seconds: float
    rebuild_events: int
    # 6. memory
    memory_accounts: int
    # 1. HTTP
    http_accounts: int
    wrk_connections: int
    wrk_threads: int
    wrk_seconds: int
    wrk_warmup_seconds: int
    # 7. open-loop latency: the offered rate as a share of the baseline's closed-loop maximum
    latency_share: float
    latency_seconds: float
    latency_warmup_seconds: float


FULL: Final = Sizes(
    quick=False,
    rounds=3,
    mediator_calls=200_000,
    accounts=1_000,
    deposits=20_000,
    in_flight=64,
    library_threads=4,
    load_lengths=(10, 10_000, 100_000),
    loads_per_length=300,
    lag_seconds=5.0,
    server_warmup_seconds=60.0,
    rebuild_events=100_000,
    memory_accounts=100_000,
    http_accounts=1_000,
    wrk_connections=64,
    wrk_threads=2,
    wrk_seconds=10,
    wrk_warmup_seconds=3,
    latency_share=0.2,
    latency_seconds=30.0,
    latency_warmup_seconds=10.0,
)

QUICK: Final = Sizes(
    quick=True,
    rounds=1,
    mediator_calls=20_000,
    accounts=50,
    deposits=500,
    in_flight=16,
    library_threads=2,
    load_lengths=(10, 500, 2_000),
    loads_per_length=20,
    lag_seconds=1.0,
    server_warmup_seconds=0.0,
    rebuild_events=2_000,
    memory_accounts=500,
    http_accounts=50,
    wrk_connections=16,
    wrk_threads=2,
    wrk_seconds=1,
    wrk_warmup_seconds=1,
    latency_share=0.2,
    latency_seconds=2.0,
    latency_warmup_seconds=1.0,
)


def sizes_for(quick: bool) -> Sizes:
    return QUICK if quick else FULL


@dataclass(slots=True)
class Row:
    """One line of the results table. ``ratio`` is measured / baseline (or / reference case)."""

    measure: str
    baseline: str
    measured: str
    ratio: str
    target: str
    status: Status
    note: str = ""


@dataclass(slots=True)
class Outcome:
    """What one bench returns: its table rows and its raw figures (for the JSON)."""

    rows: list[Row]
    figures: dict[str, Any] = field(default_factory=dict)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def at_least_text(ratio: float) -> str:
    """A ratio held against an "at least" target, rounded down to 2 places: 0.4999 reads 0.49,
    never a 0.50 that looks like it met a 0.50 target it missed."""
    return f"{math.floor(ratio * 100) / 100:.2f}"


def by_round(values: Iterable[float], template: str = "{:.1f}") -> str:
    """Each round's figure, in run order, for a note beside the median: "24.7 / 26.7 / 30.4"."""
    return " / ".join(template.format(value) for value in values)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sqlite_settings(data_dir: Path, **values: str) -> Settings:
    """The embedded default, as ``balance serve`` would resolve it, in ``data_dir``."""
    return Settings(
        event_store="sqlite",
        read_model="sqlite",
        authenticator="jwt",
        data_dir=data_dir,
        values={"jwt_secret": JWT_SECRET, **values},
    )


def ctx(subject: str) -> CommandContext:
    return CommandContext(actor=Principal(subject, READ_WRITE))


@asynccontextmanager
async def app_on(
    data_dir: Path, *, projector: bool = False, settings: Settings | None = None
) -> AsyncIterator[Application]:
    """A started application in ``data_dir``, on SQLite unless ``settings`` say otherwise; the
    projector only when asked, so that write benches measure the write side alone."""
    settings = settings or sqlite_settings(data_dir)  # the stores create the directory
    application = bootstrap(settings, run_projector=projector)
    await application.start()
    try:
        yield application
    finally:
        await application.close()


async def run_concurrently(
    jobs: Iterable[Callable[[], Awaitable[Any]]], in_flight: int
) -> list[Any]:
    """Run ``jobs`` with at most ``in_flight`` awaiting at once (workers pulling from one queue),
    results in job order."""
    pending = list(enumerate(jobs))
    pending.reverse()
    results: list[Any] = [None] * len(pending)

    async def worker() -> None:
        while pending:
            index, job = pending.pop()
            results[index] = await job()

    await asyncio.gather(*(worker() for _ in range(max(1, in_flight))))
    return results


def deposit_jobs(
    application: Application, ids: list[str], owners: list[str], order: list[int]
) -> list[Callable[[], Awaitable[Any]]]:
    """One deposit of 1.00 per index in ``order``, on ``ids[index]`` by ``owners[index]``."""
    send = application.mediator.send
    contexts = [ctx(owner) for owner in owners]

    def job(index: int) -> Callable[[], Awaitable[Any]]:
        return lambda: send(Deposit(ids[index], "1.00", contexts[index]))

    return [job(index) for index in order]


async def open_accounts(
    application: Application, owners: list[str], in_flight: int = 64
) -> list[str]:
    """Open one EUR account per owner through the mediator; their ids, in owner order."""
    send = application.mediator.send

    def job(owner: str) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            view = await send(OpenAccount("EUR", ctx(owner)))
            return view.id

        return run

    return await run_concurrently((job(owner) for owner in owners), in_flight)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop, the loop the server runs on (uvicorn picks it when installed)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the bench extra installs it
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def cpu_count() -> int:
    return os.cpu_count() or 1


@contextlib.contextmanager
def server_runtime() -> Iterator[float]:
    """The switch interval and GC settings ``balance serve`` applies, read as it reads them
    (``BALANCE_SWITCH_INTERVAL``, ``BALANCE_GC_THRESHOLD``), for the duration of a measure; the
    previous ones after. Yields the switch interval."""
    previous_interval, previous_threshold = sys.getswitchinterval(), gc.get_threshold()
    names = {"switch_interval": "BALANCE_SWITCH_INTERVAL", "gc_threshold": "BALANCE_GC_THRESHOLD"}
    settings = Settings(values={k: v for k, n in names.items() if (v := os.environ.get(n))})
    if apply_runtime(settings):
        freeze_startup_objects()
    try:
        yield sys.getswitchinterval()
    finally:
        sys.setswitchinterval(previous_interval)
        gc.set_threshold(*previous_threshold)
        gc.unfreeze()
