"""A/B of two builds of the HTTP app in one process: the event loop's CPU per deposit.

    python -m bench.ab path/to/variant.py [--chunk 640] [--rounds 80]

App A is ``api.app.create_app`` as it is; then the variant module's ``patch()`` runs, and app B
is built the same way. Both serve one application (embedded store, projector on, the server's
interpreter settings), driven in-process through ASGI (no uvicorn, no sockets) with 64 deposits
in flight: a chunk on A, a chunk on B (B first in every other round), and the difference in the
main thread's CPU per request is taken within each round. It prints the median difference, its
quartiles and how many rounds B cost more.

Separate runs cannot judge a change of a few µs on this machine (the host drifts by tens of
percent within minutes); paired chunks in one process can, to about ±4 µs (a variant that
changes nothing gives a median within that). ``patch()`` must change only what B's construction
reads (for example ``api.app.AccountController``), not a module global that both apps call per
request, or A changes too.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any

import api.app
from api.bootstrap import Application, bootstrap
from api.runtime import apply_runtime, freeze_startup_objects
from bench.backends import EMBEDDED
from bench.common import open_accounts, run_async
from plugins.jwt.tokens import mint_token

__all__ = ["Comparison", "compare", "main"]

ASGIApp = Callable[..., Coroutine[Any, Any, None]]
_BODY = b'{"amount":"1.00"}'
_IN_FLIGHT = 64


class Comparison:
    """Paired figures: each round's main-thread CPU per request on A and on B, in µs."""

    def __init__(self) -> None:
        self.a: list[float] = []
        self.b: list[float] = []
        self.statuses: dict[int, int] = {}

    @property
    def differences(self) -> list[float]:
        return [b - a for a, b in zip(self.a, self.b, strict=True)]

    def summary(self) -> str:
        diffs = self.differences
        low, _, high = statistics.quantiles(diffs, n=4) if len(diffs) > 1 else (diffs * 3)
        higher = sum(d > 0 for d in diffs)
        return (
            f"A {statistics.median(self.a):.1f} µs/request, B {statistics.median(self.b):.1f}; "
            f"B - A median {statistics.median(diffs):+.1f} µs (quartiles {low:+.1f} .. "
            f"{high:+.1f}), B higher in {higher} of {len(diffs)} rounds; statuses {self.statuses}"
        )


def load_patch(path: Path) -> Callable[[], None]:
    spec = importlib.util.spec_from_file_location(f"bench_ab_variant_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Litestar resolves the handlers' annotations through it
    spec.loader.exec_module(module)
    patch: Callable[[], None] = module.patch
    return patch


async def _lifespan(app: ASGIApp) -> tuple[asyncio.Queue[Any], asyncio.Task[None]]:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    outbox: asyncio.Queue[Any] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    return inbox, task


def _deposit_scope(account_id: str, token: bytes) -> dict[str, Any]:
    path = f"/accounts/{account_id}/deposits"
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", b"Bearer " + token),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_BODY)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _deposit(app: ASGIApp, scope: dict[str, Any], statuses: MutableMapping[int, int]) -> None:
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": _BODY, "more_body": False}
        await asyncio.Event().wait()  # never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    await app(scope, receive, send)


async def compare(
    application: Application, patch: Callable[[], None], chunk: int, rounds: int
) -> Comparison:
    app_a = api.app.create_app(application)
    patch()
    app_b = api.app.create_app(application)
    inbox, lifespan = await _lifespan(app_a)  # starts the application both apps serve
    freeze_startup_objects()
    try:
        owners = [f"ab-{i}" for i in range(1000)]
        ids = await open_accounts(application, owners)
        tokens = [mint_token(application.settings, owner, ttl=3600).encode() for owner in owners]
        pick = random.Random(1)
        result = Comparison()
        per_worker = max(chunk // _IN_FLIGHT, 1)

        async def run(app: ASGIApp) -> float:
            async def worker() -> None:
                for _ in range(per_worker):
                    k = pick.randrange(len(ids))
                    await _deposit(app, _deposit_scope(ids[k], tokens[k]), result.statuses)

            started = time.thread_time()
            await asyncio.gather(*(worker() for _ in range(_IN_FLIGHT)))
            return 1e6 * (time.thread_time() - started) / (per_worker * _IN_FLIGHT)

        await run(app_a)  # warm both
        await run(app_b)
        result.statuses.clear()
        for round_ in range(rounds):
            if round_ % 2 == 0:
                result.a.append(await run(app_a))
                result.b.append(await run(app_b))
            else:
                result.b.append(await run(app_b))
                result.a.append(await run(app_a))
        return result
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    parser.add_argument("variant", type=Path, help="a Python file that defines patch()")
    parser.add_argument("--chunk", type=int, default=640, help="deposits per chunk")
    parser.add_argument("--rounds", type=int, default=80, help="pairs of chunks")
    args = parser.parse_args(argv)
    patch = load_patch(args.variant)
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        settings = EMBEDDED.settings(Path(tmp) / "store")
        apply_runtime(settings)
        result = run_async(compare(bootstrap(settings), patch, args.chunk, args.rounds))
    print(result.summary())


if __name__ == "__main__":
    main()
