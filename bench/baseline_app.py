"""The HTTP baseline: a plain Litestar endpoint on the same server settings as ``balance serve``
(uvicorn, one worker, the same loop and HTTP parser, no access log, no server header, and the
same interpreter settings: GIL switch interval, GC thresholds, start-up objects frozen), decoding
the same msgspec body as the deposit route and answering JSON, with no backend and no auth.

Run: ``python -m bench.baseline_app --port 8001``.
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import msgspec
from litestar import Litestar, Response, get, post

from api.runtime import apply_runtime, freeze_startup_objects
from core.config import load_settings

__all__ = ["create_app", "main"]


class MovementIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The shape of ``handlers.accounts.web.schemas.MovementIn``, declared here so the baseline
    owes nothing to us."""

    amount: Decimal
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class MovementOut(msgspec.Struct, frozen=True):
    id: str
    account: str
    kind: str
    amount: str
    balance_after: str
    version: int
    occurred_at: datetime


@post("/accounts/{account_id:str}/deposits")
async def deposit(account_id: str, data: MovementIn) -> Response[MovementOut]:
    amount = format(data.amount, "f")
    out = MovementOut(
        str(uuid.uuid4()), account_id, "deposit", amount, amount, 1, datetime.now(UTC)
    )
    return Response(out, status_code=201, headers={"ETag": '"1"'})


@get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[deposit, live], logging_config=None, debug=False)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The interpreter settings ``balance serve`` applies (api/runtime.py), at their defaults.
    # Without them the baseline's p99 is its garbage collector's full passes (about 30 ms
    # against 14 ms with them, at the same req/s), which is not what the comparison is about.
    freeze = apply_runtime(load_settings({}, config_file=None))
    app = create_app()
    if freeze:
        freeze_startup_objects()
    # The options of ``balance serve`` (api/cli.py), loop and http left to "auto" as there.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
