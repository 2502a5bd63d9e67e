"""Several ``balance serve`` instances of one deployment on one Kafka topic (measures 11 and 12):
each with its own data directory, port and advertised URL, the same topic, transactional prefix,
group prefix, Mongo database and JWT secret. An instance is started, SIGKILLed and started again
by its process; ``settled`` waits until the running ones own every partition exactly once.

Ports come from ``BENCH_HTTP_PORTS`` ("18400-18499") when it is set (on a shared host each user
has a range), else the OS picks free ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import httpx

from bench.backends import Backend
from bench.scaling import forwarded_count
from bench.servers import ROOT, cpu_times, stop_process

__all__ = ["Instance", "cluster", "http_port", "ownership", "settled"]

# Upper bounds only: they turn a hang into a failure.
START_BOUND: Final = 300.0
SETTLE_BOUND: Final = 180.0


_HANDED_OUT: Final[set[int]] = set()


def http_port() -> int:
    """A port nobody listens on and no other instance of this run was given, from
    ``BENCH_HTTP_PORTS`` when set."""
    low, _, high = os.environ.get("BENCH_HTTP_PORTS", "").partition("-")
    candidates = list(range(int(low), int(high or low) + 1)) if low else []
    random.shuffle(candidates)
    for port in (*candidates, 0, 0, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            found = int(probe.getsockname()[1])
        if found not in _HANDED_OUT:
            _HANDED_OUT.add(found)
            return found
    raise RuntimeError("no free port in BENCH_HTTP_PORTS")


class Instance:
    """``balance serve`` on one port and data directory, with its output in a log file."""

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = http_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"{name}.log"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BALANCE_")}
        self.env = {**inherited, "PYTHONPATH": str(ROOT), **env, "BALANCE_ADVERTISED_URL": self.url}
        self.process: subprocess.Popen[bytes] | None = None
        self.ready = False  # answered /health/ready 200 since it last started

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self) -> float:
        """Start the process and wait until ``/health/ready`` answers 200; the seconds that
        took."""
        command = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port)]
        started = time.perf_counter()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - returns once spawned
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        async with httpx.AsyncClient(base_url=self.url, timeout=5.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health/ready")).status_code == 200:
                        self.ready = True
                        return time.perf_counter() - started
                if time.perf_counter() - started > START_BOUND:
                    raise RuntimeError(f"{self.name} was not ready; see {self.log}")
                await asyncio.sleep(0.05)

    def kill(self) -> float:
        """SIGKILL the process; the ``time.perf_counter()`` at which the signal was sent."""
        process = self.process
        assert process is not None, f"{self.name} was never started"
        assert process.poll() is None, f"{self.name} is not running"
        self.ready = False
        killed_at = time.perf_counter()
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        return killed_at

    async def stop(self) -> None:
        process, self.process = self.process, None
        self.ready = False
        if process is not None:
            await asyncio.to_thread(stop_process, process)

    async def forwarded(self, client: httpx.AsyncClient) -> int:
        """The commands this instance forwarded to their owner so far (its ``/metrics``)."""
        response = await client.get(f"{self.url}/metrics")
        response.raise_for_status()
        return forwarded_count(response.text)

    def cpu_seconds(self) -> float:
        """The CPU time the process has used so far (0 when it is not running)."""
        times = cpu_times(self.process.pid) if self.running and self.process else None
        return times.process if times else 0.0


async def ownership(instance: Instance, client: httpx.AsyncClient) -> dict[int, bool]:
    """The partitions ``instance`` owns, each with whether it is taken over (``/health/ready``);
    nothing when it does not answer."""
    try:
        body = (await client.get(f"{instance.url}/health/ready")).json()
    except (httpx.TransportError, ValueError):
        return {}
    owned = body.get("partitions", {})
    return {int(partition): bool(state.get("caught_up")) for partition, state in owned.items()}


async def settled(instances: list[Instance], partitions: int) -> None:
    """Until the running ``instances`` own every partition exactly once, each taken over."""
    give_up = time.perf_counter() + SETTLE_BOUND
    async with httpx.AsyncClient(timeout=5.0) as client:
        while True:
            running = [instance for instance in instances if instance.running]
            views = [await ownership(instance, client) for instance in running]
            owners = sorted(partition for view in views for partition in view)
            if owners == list(range(partitions)) and all(all(v.values()) for v in views):
                return
            if time.perf_counter() > give_up:
                raise RuntimeError(f"ownership never settled: {views}")
            await asyncio.sleep(0.1)


@asynccontextmanager
async def cluster(
    backend: Backend, root: Path, count: int, partitions: int
) -> AsyncIterator[list[Instance]]:
    """``count`` instances of ``backend`` (on its own names already), none started; every one
    still running is stopped at the end."""
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    instances = []
    for index in range(count):
        env = backend.server_env(root / f"instance-{index}")
        env["BALANCE_KAFKA_PARTITIONS"] = str(partitions)
        instances.append(Instance(f"instance-{index}", env, logs))
    try:
        yield instances
    finally:
        await asyncio.gather(*(instance.stop() for instance in instances))
