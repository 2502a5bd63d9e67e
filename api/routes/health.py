"""Operations: liveness, readiness of every configured backend, Prometheus metrics, and the
problem types' documentation (each problem ``type`` URI resolves here)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from api.bootstrap import Application
from api.observability import METRICS_CONTENT_TYPE, Metrics
from api.problem_types import PROBLEMS_STATE_KEY, ProblemCatalog
from api.schemas import LiveOut, ReadyOut
from core.http.problems import problem_responses
from core.ports import Lifecycle
from core.registry import ProblemType

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
    async def list_types(self, request: Request[Any, Any, Any]) -> list[ProblemTypeOut]:
        types = _catalog(request).by_slug
        return [_out(slug, types) for slug in sorted(types)]

    @get("/{slug:str}", summary="One problem type", responses=problem_responses(404))
    async def get_type(
        self, slug: FromPath[str], request: Request[Any, Any, Any]
    ) -> ProblemTypeOut:
        types = _catalog(request).by_slug
        if slug not in types:
            raise NotFoundException(f"no problem type {slug!r}")
        return _out(slug, types)


def _catalog(request: Request[Any, Any, Any]) -> ProblemCatalog:
    catalog: ProblemCatalog = request.app.state[PROBLEMS_STATE_KEY]
    return catalog


def _out(slug: str, types: Mapping[str, ProblemType]) -> ProblemTypeOut:
    problem = types[slug]
    return ProblemTypeOut(f"/problems/{slug}", problem.status, problem.title, problem.description)
