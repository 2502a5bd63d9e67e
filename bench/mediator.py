"""4. Mediator overhead: ``send`` through three behaviors against awaiting the handler directly.

Two pipelines are timed, each over a handler that does nothing:
- three pass-through behaviors: the mediator's own cost (lookup, the folded chain, three frames);
- the accounts pipeline a command really runs through: ``LogRequests`` (behavior),
  ``RequireScope`` (pre-processor), ``RetryOnConflict`` (behavior).

Each round times the direct call and both sends in turn, ``calls`` times each, in one coroutine;
the overhead is (send - direct) per call. The target is judged on the pass-through pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.common import Outcome, Row, Sizes, ctx, median, run_async
from core.mediator import Mediator
from core.mediator_builder import MediatorBuilder
from core.messages import Request
from handlers.accounts.behaviors import LogRequests, RequireScope, RetryOnConflict
from handlers.accounts.messages import Command, Deposit

__all__ = ["run"]

TARGET_US = 1.5


@dataclass(frozen=True, slots=True)
class Ping(Request[int]):
    value: int


class PingHandler:
    async def handle(self, request: Any) -> int:
        return 1


class PassThrough:
    async def handle(self, request: Any, call_next: Callable[[], Awaitable[Any]]) -> Any:
        return await call_next()


def _pass_through() -> Mediator:
    builder = MediatorBuilder()
    for _ in range(3):
        builder.add_behavior(PassThrough(), plugin="bench")
    builder.add_handler(Ping, PingHandler(), plugin="bench")
    return builder.build()


def _accounts_pipeline() -> Mediator:
    builder = MediatorBuilder()
    builder.add_behavior(LogRequests(), plugin="bench")
    builder.add_pre_processor(RequireScope(), plugin="bench")
    builder.add_behavior(RetryOnConflict(5), plugin="bench", request_type=Command)
    builder.add_handler(Deposit, PingHandler(), plugin="bench")
    return builder.build()


async def _per_call_us(call: Callable[[Any], Awaitable[Any]], request: Any, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await call(request)
    return (time.perf_counter() - started) / calls * 1e6


async def _round(calls: int) -> dict[str, float]:
    handler = PingHandler()
    ping = Ping(1)
    deposit = Deposit("acc", "1.00", ctx("bench"))
    plain, accounts = _pass_through(), _accounts_pipeline()
    await _per_call_us(plain.send, ping, calls // 10)  # warm-up
    return {
        "direct_us": await _per_call_us(handler.handle, ping, calls),
        "send_3_behaviors_us": await _per_call_us(plain.send, ping, calls),
        "send_accounts_pipeline_us": await _per_call_us(accounts.send, deposit, calls),
    }


def run(sizes: Sizes) -> Outcome:
    rounds = [run_async(_round(sizes.mediator_calls)) for _ in range(sizes.rounds)]
    figure = {key: median(r[key] for r in rounds) for key in rounds[0]}
    overhead = median(r["send_3_behaviors_us"] - r["direct_us"] for r in rounds)
    accounts = median(r["send_accounts_pipeline_us"] - r["direct_us"] for r in rounds)
    figure |= {"overhead_us": overhead, "accounts_overhead_us": accounts}
    direct = f"{figure['direct_us']:.2f} µs direct"
    rows = [
        Row(
            "4. mediator: send, 3 pass-through behaviors",
            direct,
            f"{figure['send_3_behaviors_us']:.2f} µs (+{overhead:.2f} µs)",
            f"{figure['send_3_behaviors_us'] / figure['direct_us']:.1f}x",
            f"overhead ≤ {TARGET_US} µs",
            "pass" if overhead <= TARGET_US else "miss",
        ),
        Row(
            "4. mediator: send, accounts pipeline (log, scope, retry)",
            direct,
            f"{figure['send_accounts_pipeline_us']:.2f} µs (+{accounts:.2f} µs)",
            f"{figure['send_accounts_pipeline_us'] / figure['direct_us']:.1f}x",
            "info",
            "info",
        ),
    ]
    return Outcome(rows, {**figure, "rounds": rounds})
