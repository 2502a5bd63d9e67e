"""Warm the Kafka + Mongo servers up before their first measure.

A broker's JVM compiles its hot paths while it serves its first minutes of load, and the
JIT's compiler threads take CPU from everything else on the two cores. Measured here, with
the lag bench run three times in a row on a broker just started: its maximum (projector on) was
3.9k, then 5.1k, then 6.9k deposits/s. ``bench/run`` starts the servers itself when none are
configured, so without a warm-up the first Kafka + Mongo measure would measure the JVM's start,
not the system a deployment runs for weeks.

The warm-up is the lag bench's own full-speed workload (``bench.lag.full_speed``): ``in_flight``
deposits at once through an application with its projector on (so FerretDB serves its real
writes too), on a topic and database of its own, deleted afterwards. No target is held against
it; the JSON keeps how long it ran, how many deposits it made and their rate.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.backends import Backend, drop_own_names
from bench.common import Sizes, app_on, open_accounts, run_async, server_runtime
from bench.lag import full_speed
from core.config import Settings

__all__ = ["run", "to_warm"]


async def _deposit_for(settings: Settings, sizes: Sizes) -> tuple[float, int]:
    """The rate and the number of deposits of ``server_warmup_seconds`` at full speed."""
    owners = [f"user-{i}" for i in range(sizes.accounts)]
    async with app_on(settings.data_dir, projector=True, settings=settings) as application:
        ids = await open_accounts(application, owners, sizes.in_flight)
        seconds = sizes.server_warmup_seconds
        rate, _, deposits = await full_speed(application, ids, sizes.in_flight, 0.0, seconds)
    return rate, deposits


def to_warm(sizes: Sizes, backends: Sequence[Backend]) -> list[Backend]:
    """The measured backends that run on servers, when this run warms servers at all."""
    if sizes.server_warmup_seconds <= 0:
        return []
    return [b for b in backends if not b.missing and b.key != "embedded"]


def run(sizes: Sizes, backends: Sequence[Backend]) -> dict[str, Any]:
    """Warm each backend of ``to_warm`` for ``sizes.server_warmup_seconds``; what was done, per
    backend key."""
    done: dict[str, Any] = {}
    for backend in to_warm(sizes, backends):
        with (
            server_runtime(),
            tempfile.TemporaryDirectory(prefix=f"bench-warmup-{backend.key}-") as tmp,
        ):
            settings = backend.own_names("bench.warmup").settings(Path(tmp))
            started = time.perf_counter()
            try:
                rate, deposits = run_async(_deposit_for(settings, sizes))
            finally:
                drop_own_names(settings)
        done[backend.key] = {
            "label": backend.label,
            "seconds": sizes.server_warmup_seconds,
            "wall_s": time.perf_counter() - started,  # with the accounts, start and clean-up
            "deposits": deposits,
            "per_s": rate,
        }
    return done
