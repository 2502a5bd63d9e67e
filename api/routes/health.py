"""Operations: liveness, readiness of every configured backend, Prometheus metrics, and the
problem types' documentation (each problem ``type`` URI resolves here)."""

from __future__ import annotations

import asyncio
from typing import Final

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from api.bootstrap import Application
from api.observability import METRICS_CONTENT_TYPE, Metrics
from api.problems import all_problem_types, problem_responses
from core.ports import Lifecycle
from handlers.accounts.web.schemas import LiveOut, ReadyOut

__all__ = ["HealthController", "ProblemDocs"]

READY_TIMEOUT: Final = 2.0


async def _ready(backend: object) -> bool:
    if not isinstance(backend, Lifecycle):
        return True
    try:
        return bool(await asyncio.wait_for(backend.ready(), READY_TIMEOUT))
    except Exception:
        return False


class HealthController(Controller):
    path = "/"
    tags = ["operations"]  # noqa: RUF012

    @get("/health/live", summary="Liveness")
    async def live(self) -> LiveOut:
        return LiveOut()

    @get(
        "/health/ready",
        summary="Readiness of every configured backend",
        responses={503: ResponseSpec(ReadyOut, description="A backend is not ready")},
    )
    async def ready(self, application: NamedDependency[Application]) -> Response[ReadyOut]:
        ports = list(application.backends)
        results = await asyncio.gather(*(_ready(application.backends[p]) for p in ports))
        checks: dict[str, bool] = dict(zip(ports, results, strict=True))
        ok = all(results)
        return Response(
            ReadyOut("ready" if ok else "unavailable", checks), status_code=200 if ok else 503
        )

    @get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(self, metrics: NamedDependency[Metrics]) -> Response[bytes]:
        return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)


class ProblemTypeOut(msgspec.Struct, frozen=True):
    type: str
    status: int
    title: str
    description: str


class ProblemDocs(Controller):
    path = "/problems"
    tags = ["operations"]  # noqa: RUF012

    @get("/", summary="Every problem type this API answers with")
    async def list_types(self) -> list[ProblemTypeOut]:
        return [_out(slug) for slug in sorted(all_problem_types())]

    @get("/{slug:str}", summary="One problem type", responses=problem_responses(404))
    async def get_type(self, slug: FromPath[str]) -> ProblemTypeOut:
        if slug not in all_problem_types():
            raise NotFoundException(f"no problem type {slug!r}")
        return _out(slug)


def _out(slug: FromPath[str]) -> ProblemTypeOut:
    problem = all_problem_types()[slug]
    return ProblemTypeOut(f"/problems/{slug}", problem.status, problem.title, problem.description)
