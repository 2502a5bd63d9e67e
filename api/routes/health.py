"""Operations: liveness, readiness of every configured backend, Prometheus metrics, and the
problem types' documentation (each problem ``type`` URI resolves here)."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import MethodNotAllowedException, NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from api.bootstrap import Application
from api.observability import METRICS_CONTENT_TYPE, Metrics, backend_reports
from api.problem_types import PROBLEMS_STATE_KEY, SHELL_PROBLEM_TYPES, ProblemCatalog
from api.schemas import LiveOut, PartitionOut, ReadyOut
from core.http.examples import example, with_examples
from core.http.problems import problem_responses, problem_type_uri
from core.ports import Lifecycle
from core.registry import ProblemType

__all__ = ["HealthController", "ProblemDocs"]

READY_TIMEOUT: Final = 2.0

_CHECKS: Final = ("event_store", "read_model", "authenticator")
_LIVE: Final = with_examples(responses={200: example("Alive", msgspec.to_builtins(LiveOut()))})
_UNAVAILABLE: Final = ReadyOut(
    "unavailable", {**dict.fromkeys(_CHECKS, True), "event_store": False}
)
_READY: Final = with_examples(
    responses={
        200: example("Ready", msgspec.to_builtins(ReadyOut("ready", dict.fromkeys(_CHECKS, True)))),
        503: example("The event store is down", msgspec.to_builtins(_UNAVAILABLE)),
    }
)


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

    @get("/health/live", summary="Liveness", operation_class=_LIVE)
    async def live(self) -> LiveOut:
        return LiveOut()

    @get(
        "/health/ready",
        summary="Readiness of every configured backend",
        responses={503: ResponseSpec(ReadyOut, description="A backend is not ready")},
        operation_class=_READY,
    )
    async def ready(self, application: NamedDependency[Application]) -> Response[ReadyOut]:
        ports = list(application.backends)
        results = await asyncio.gather(*(_ready(application.backends[p]) for p in ports))
        checks: dict[str, bool] = dict(zip(ports, results, strict=True))
        reports = backend_reports(application.backends)
        details = {port: report.details for port, report in reports.items() if report.details}
        partitions = {
            str(partition): PartitionOut(caught_up)
            for report in reports.values()
            for partition, caught_up in sorted(report.partitions.items())
        }
        ok = all(results)
        return Response(
            ReadyOut("ready" if ok else "unavailable", checks, partitions, details),
            status_code=200 if ok else 503,
        )

    @get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(self, metrics: NamedDependency[Metrics]) -> Response[bytes]:
        return Response(metrics.exposition(), media_type=METRICS_CONTENT_TYPE)


class ProblemTypeOut(msgspec.Struct, frozen=True):
    type: str
    status: int
    title: str
    description: str


def _out(problem: ProblemType) -> ProblemTypeOut:
    return ProblemTypeOut(
        problem_type_uri(problem.slug), problem.status, problem.title, problem.description
    )


def _example(exc: type[Exception]) -> dict[str, Any]:
    return dict(msgspec.to_builtins(_out(SHELL_PROBLEM_TYPES[exc])))


_NOT_FOUND: Final = _example(NotFoundException)
_TYPES: Final = with_examples(
    responses={200: example("Two of them", [_example(MethodNotAllowedException), _NOT_FOUND])}
)
_TYPE: Final = with_examples(responses={200: example("Not found", _NOT_FOUND)})


class ProblemDocs(Controller):
    path = "/problems"
    tags = ["operations"]  # noqa: RUF012

    @get("/", summary="Every problem type this API answers with", operation_class=_TYPES)
    async def list_types(self, request: Request[Any, Any, Any]) -> list[ProblemTypeOut]:
        types = _catalog(request).by_slug
        return [_out(types[slug]) for slug in sorted(types)]

    @get(
        "/{slug:str}",
        summary="One problem type",
        responses=problem_responses(404),
        operation_class=_TYPE,
    )
    async def get_type(
        self, slug: FromPath[str], request: Request[Any, Any, Any]
    ) -> ProblemTypeOut:
        types = _catalog(request).by_slug
        if slug not in types:
            raise NotFoundException(f"no problem type {slug!r}")
        return _out(types[slug])


def _catalog(request: Request[Any, Any, Any]) -> ProblemCatalog:
    catalog: ProblemCatalog = request.app.state[PROBLEMS_STATE_KEY]
    return catalog
