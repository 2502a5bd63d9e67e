"""Warm the Kafka + Mongo servers up before their first measure.

A broker's JVM compiles its hot paths while it serves its first minutes of load, and the
JIT's compiler threads take CPU from everything else on the two cores. Measured here, with
the lag bench run three times in a row on a broker just started: its maximum (projector on) was
3.9k, then 5.1k, then 6.9k deposits/s. ``bench/run`` starts the servers itself when none are
configured, so without a warm-up the first Kafka + Mongo measure would measure the JVM's start,
not the system a deployment runs for weeks.

The warm-up is the lag bench's own workload at full speed: ``in_flight`` deposits at once
through an application with its projector on (so FerretDB serves its real writes too), on a
topic and database of its own, deleted afterwards. Nothing is measured from it; the JSON keeps
how long it ran and how many deposits it made.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.backends import Backend, drop_own_names
from bench.common import Sizes, app_on, ctx, open_accounts, run_async, server_runtime
from core.config import Settings
from handlers.accounts.requests import Deposit

__all__ = ["run"]


async def _deposit_for(settings: Settings, sizes: Sizes, seconds: float) -> int:
    owners = [f"warm-{i}" for i in range(sizes.accounts)]
    async with app_on(settings.data_dir, projector=True, settings=settings) as application:
        ids = await open_accounts(application, owners, sizes.in_flight)
        send = application.mediator.send
        contexts = [ctx(owner) for owner in owners]
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        done = 0

        async def worker(offset: int) -> None:
            nonlocal done
            index = offset
            while loop.time() < end:
                account = index % len(ids)
                await send(Deposit(ids[account], "1.00", contexts[account]))
                index += sizes.in_flight
                done += 1

        await asyncio.gather(*(worker(i) for i in range(sizes.in_flight)))
    return done


def run(sizes: Sizes, backends: Sequence[Backend]) -> dict[str, Any]:
    """Warm every measured server-backed backend for ``sizes.server_warmup_seconds``; what was
    done, per backend key (empty when there is nothing to warm)."""
    done: dict[str, Any] = {}
    for backend in backends:
        if backend.missing or backend.key == "embedded" or sizes.server_warmup_seconds <= 0:
            continue
        with (
            server_runtime(),
            tempfile.TemporaryDirectory(prefix=f"bench-warmup-{backend.key}-") as tmp,
        ):
            settings = backend.own_names("bench.warmup").settings(Path(tmp))
            started = time.perf_counter()
            try:
                deposits = run_async(_deposit_for(settings, sizes, sizes.server_warmup_seconds))
            finally:
                drop_own_names(settings)
        done[backend.key] = {
            "label": backend.label,
            "seconds": sizes.server_warmup_seconds,
            "wall_s": time.perf_counter() - started,  # with the accounts, start and clean-up
            "deposits": deposits,
        }
    return done
