"""9. Live feeds: 1,000 open ``GET /accounts/{id}/events`` streams on one embedded-default server,
deposits at a constant rate, and how long each movement takes to reach its feed.

1,000 accounts, one owner each with a real token, one feed each (raw HTTP/1.1 over asyncio
sockets, so the client costs little next to the server). The server's resident memory is read
before and after the feeds open: the difference over their number is the memory per feed. Then
deposits go out at a fixed rate (open loop: each is scheduled at its own instant and sent by the
first free connection of a pool), round-robin over the accounts; each deposit's answer carries the
account's version, and the feed's event with that id is the delivery. The row reports the time
from the deposit's acknowledgement to its event's arrival (p50, p99), and the achieved rate. The
client shares the two cores with the server, so the figures are an upper bound.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.backends import EMBEDDED
from bench.common import Outcome, Row, Sizes, run_async
from bench.http import API_SERVER, accounts_files
from bench.servers import Server, rss_mb, serve

__all__ = ["run"]

RATE: Final = 1_000.0  # deposits per second, offered
SENDERS: Final = 64  # keep-alive connections sending deposits
BODY: Final = b'{"amount":"1.00"}'


@dataclass
class _Feeds:
    """Arrival times of each (account, version) event, and the feeds' sockets."""

    arrived: dict[tuple[str, int], float] = field(default_factory=dict)
    opened: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes = b""
) -> tuple[int, bytes]:
    writer.write(head + body)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


async def _watch(port: int, account: str, token: str, feeds: _Feeds) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    feeds.writers.append(writer)
    writer.write(
        f"GET /accounts/{account}/events HTTP/1.1\r\nHost: bench\r\n"
        f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"a feed was refused: {status!r}")
    feeds.opened += 1
    event_id: int | None = None
    while line := await reader.readline():
        if line.startswith(b"id: "):
            event_id = int(line[4:])
        elif line.startswith(b"event: movement") and event_id is not None:
            feeds.arrived[(account, event_id)] = time.perf_counter()


async def _deposits(
    port: int, accounts: list[tuple[str, str]], seconds: float
) -> list[tuple[str, int, float]]:
    """Deposits at ``RATE``, each scheduled at its instant; (account, version, acknowledged)."""
    total = int(RATE * seconds)
    jobs: asyncio.Queue[int | None] = asyncio.Queue()
    acknowledged: list[tuple[str, int, float]] = []

    async def sender() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (index := await jobs.get()) is not None:
                account, token = accounts[index % len(accounts)]
                head = (
                    f"POST /accounts/{account}/deposits HTTP/1.1\r\nHost: bench\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(BODY)}\r\n\r\n"
                ).encode()
                status, body = await _request(reader, writer, head, BODY)
                if status == 201:
                    version = int(json.loads(body)["version"])
                    acknowledged.append((account, version, time.perf_counter()))
        finally:
            writer.close()

    senders = [asyncio.create_task(sender()) for _ in range(SENDERS)]
    started = time.perf_counter()
    for index in range(total):
        delay = started + index / RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        jobs.put_nowait(index)
    for _ in senders:
        jobs.put_nowait(None)
    await asyncio.gather(*senders)
    return acknowledged


async def _measure(
    server: Server, accounts: list[tuple[str, str]], seconds: float
) -> dict[str, Any]:
    feeds = _Feeds()
    before = rss_mb(server.process.pid)
    watchers = [
        asyncio.create_task(_watch(server.port, account, token, feeds))
        for account, token in accounts
    ]
    while feeds.opened < len(accounts):
        if any(task.done() for task in watchers):
            for task in watchers:
                if task.done():
                    task.result()  # raises why a feed ended
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # the server settles what each open feed holds
    after = rss_mb(server.process.pid)
    started = time.perf_counter()
    acknowledged = await _deposits(server.port, accounts, seconds)
    elapsed = time.perf_counter() - started
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and any(  # noqa: ASYNC110 - polls another task's dict
        (account, version) not in feeds.arrived for account, version, _ in acknowledged
    ):
        await asyncio.sleep(0.1)
    delays = [
        (feeds.arrived[(account, version)] - at) * 1000
        for account, version, at in acknowledged
        if (account, version) in feeds.arrived
    ]
    for writer in feeds.writers:
        writer.close()
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    quantiles = statistics.quantiles(delays, n=100) if len(delays) > 1 else [0.0] * 99
    return {
        "feeds": len(accounts),
        "rss_mb_before": before["rss_mb"],
        "rss_mb_with_feeds": after["rss_mb"],
        "kib_per_feed": (after["rss_mb"] - before["rss_mb"]) * 1024 / len(accounts),
        "offered_per_s": RATE,
        "achieved_per_s": len(acknowledged) / elapsed,
        "acknowledged": len(acknowledged),
        "delivered": len(delays),
        "p50_ms": statistics.median(delays) if delays else 0.0,
        "p99_ms": quantiles[98],
    }


def run(sizes: Sizes) -> Outcome:
    embedded = EMBEDDED
    count = sizes.http_accounts
    seconds = sizes.latency_seconds / 3
    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as temp:
        root = Path(temp)
        with accounts_files([embedded], root, count) as files:
            lines = files[embedded.key].read_text().split("\n")
            accounts = [(a, t) for a, _, t in (line.partition(" ") for line in lines) if a]
            env = embedded.server_env(root / embedded.key)
            with serve("feeds", API_SERVER, env, root) as server:
                figures = run_async(_measure(server, accounts, seconds))
    missing = figures["acknowledged"] - figures["delivered"]
    row = Row(
        f"9. Live feeds, {count:,} open, deposit acknowledged → event delivered",
        "",
        f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms at "
        f"{figures['achieved_per_s']:,.0f} deposits/s; {figures['kib_per_feed']:.0f} KiB per feed",
        "",
        "report",
        "info" if missing == 0 else "miss",
        f"{missing} acknowledged deposits never reached their feed" if missing else "",
    )
    return Outcome([row], figures)
