"""The Litestar app factory. Nothing is built at import time: ``create_app`` takes (or bootstraps)
the ``Application``, and the app's lifespan starts and closes it. The app knows no domain:
its routes, problem types and OpenAPI tags come from the plugins (``balance_routes``,
``balance_problem_types``, ``balance_openapi``). Handlers talk to the mediator and to nothing
else: routes get it, and the caller, from their request (``core.http.request``); the ``mediator``,
``principal``, ``application`` and ``metrics`` dependencies serve the operations routes and the
routes of plugins that declare them.

``uvicorn --factory api.app:serve_app`` is what ``balance serve`` runs in each worker: it reads
the settings, sets up JSON logs and builds the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.plugins import OpenAPISchemaPlugin
from litestar.routes import HTTPRoute

from api.apidocs import SCHEMA_PATH, openapi_router, render_plugins
from api.bootstrap import Application, bootstrap
from api.observability import (
    Metrics,
    ObservabilityMiddleware,
    configure_logging,
    write_logs_directly,
)
from api.problem_types import PROBLEMS_STATE_KEY, ProblemCatalog
from api.routes.health import HealthController, ProblemDocs
from api.runtime import apply_runtime, freeze_startup_objects
from api.schemas import OPENAPI_PLUGINS
from core.auth import Authenticator, PeerCredentials
from core.config import (
    DEFAULT_FORWARD_MAX_HOPS,
    DEFAULT_FORWARD_TIMEOUT,
    ConfigError,
    Settings,
    env_name,
    load_settings,
)
from core.http.forwarding import FORWARDER_STATE_KEY, Forwarder
from core.http.peers import PEER_CREDENTIALS_STATE_KEY
from core.http.query import QUERY_TYPE_DECODERS
from core.http.request import (
    AUTHENTICATOR_STATE_KEY,
    MEDIATOR_STATE_KEY,
    ApiRequest,
    provide_principal,
)
from core.http.sse import STREAMS_STATE_KEY, StreamsClosing
from core.mediator import Mediator

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "openapi_config", "serve_app"]

DEFAULT_MAX_BODY_BYTES: Final = 64 * 1024


def openapi_config(tags: Sequence[Tag] = ()) -> OpenAPIConfig:
    """``tags``: the plugins' tags, listed ahead of the shell's own."""
    return OpenAPIConfig(
        title="account-balance",
        version="0.1.0",
        description="Customer accounts and balances (CQRS, event sourced). Errors are RFC 9457 "
        "problem documents; each `type` resolves under `/problems/`.",
        path=SCHEMA_PATH,
        render_plugins=render_plugins(),
        openapi_router=openapi_router(),
        components=Components(
            security_schemes={
                "BearerAuth": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="A JWT with `sub`, `exp`, `scope` (`accounts:read`, "
                    "`accounts:write`) and optionally `roles` (`teller`).",
                )
            }
        ),
        tags=[*tags, Tag(name="operations", description="Health, metrics, problem types")],
    )


def create_app(application: Application | None = None) -> Litestar:
    app_ = application if application is not None else bootstrap()
    settings = app_.settings
    forwarder = _forwarder(settings)
    metrics = Metrics(projected=app_.projected, forwarded=forwarder, backends=lambda: app_.backends)
    problems = ProblemCatalog(types for _plugin, types in app_.problem_types())
    openapi = [addition for _plugin, addition in app_.openapi_additions()]

    streams = StreamsClosing()

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await app_.start()
        try:
            yield
        finally:
            streams.close_all()
            await forwarder.close()
            await app_.close()
            write_logs_directly()  # the server's last lines must not wait in a queue

    def provide_mediator() -> Mediator:
        return app_.mediator

    def provide_application() -> Application:
        return app_

    def provide_metrics() -> Metrics:
        return metrics

    plugin_routes: list[Any] = [handler for _plugin, handler in app_.routes()]
    app = Litestar(
        route_handlers=[*plugin_routes, HealthController, ProblemDocs],
        dependencies={
            "mediator": Provide(provide_mediator, use_cache=True, sync_to_thread=False),
            "application": Provide(provide_application, use_cache=True, sync_to_thread=False),
            "metrics": Provide(provide_metrics, use_cache=True, sync_to_thread=False),
            "principal": Provide(provide_principal),
        },
        exception_handlers={Exception: problems.respond},
        middleware=[
            DefineMiddleware(
                ObservabilityMiddleware,
                metrics=metrics,
                access_log=_flag(settings.get("access_log")),
            )
        ],
        request_class=ApiRequest,
        type_decoders=QUERY_TYPE_DECODERS,
        state=State(
            {
                MEDIATOR_STATE_KEY: app_.mediator,
                AUTHENTICATOR_STATE_KEY: app_.container.resolve(Authenticator),
                PROBLEMS_STATE_KEY: problems,
                STREAMS_STATE_KEY: streams,
                FORWARDER_STATE_KEY: forwarder,
                PEER_CREDENTIALS_STATE_KEY: _peer_credentials(app_),
            }
        ),
        request_max_body_size=settings.get_int("max_body_bytes", DEFAULT_MAX_BODY_BYTES),
        openapi_config=openapi_config([tag for tag in openapi if isinstance(tag, Tag)]),
        plugins=[
            *(plugin for plugin in openapi if isinstance(plugin, OpenAPISchemaPlugin)),
            *OPENAPI_PLUGINS,
        ],
        lifespan=[lifespan],
        logging_config=None,
        debug=False,
    )
    _allow_every_method(app)
    return app


def _peer_credentials(app_: Application) -> PeerCredentials | None:
    """What the other instances sign their messages with, if the deployment has it."""
    container = app_.container
    return container.resolve(PeerCredentials) if container.has(PeerCredentials) else None


def _forwarder(settings: Settings) -> Forwarder:
    """Forwards commands to the instance that writes their stream (``core.http.forwarding``)."""
    max_hops = settings.get_int("forward_max_hops", DEFAULT_FORWARD_MAX_HOPS)
    timeout = settings.get_float("forward_timeout", DEFAULT_FORWARD_TIMEOUT)
    if max_hops < 0:
        raise ConfigError(f"{env_name('forward_max_hops')} must not be negative: {max_hops}")
    if not timeout > 0:
        raise ConfigError(f"{env_name('forward_timeout')} must be a positive number: {timeout}")
    return Forwarder(max_hops, timeout)


def _allow_every_method(app: Litestar) -> None:
    """Litestar 2 makes a path's OPTIONS handler along with the path's first handler, and its
    ``Allow`` keeps naming that handler's methods only: ``OPTIONS /accounts`` left out POST
    (fixed in Litestar 3). Answer OPTIONS with every method of the finished route instead; the
    hook runs on OPTIONS requests alone."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        handler, _ = route.route_handler_map["OPTIONS"]
        if handler.handler_name == "options_handler":  # Litestar's own, not a plugin's
            handler.before_request = _options_answer(", ".join(sorted(route.methods)))


def _options_answer(allow: str) -> Callable[[Request[Any, Any, Any]], Awaitable[Response[None]]]:
    async def answer(_: Request[Any, Any, Any]) -> Response[None]:
        return Response(None, status_code=204, headers={"Allow": allow})

    return answer


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def serve_app() -> Litestar:
    """The factory each ``--workers`` process calls: settings from the environment, JSON logs,
    the runtime settings of ``balance serve`` (api.runtime), the app."""
    settings = load_settings()
    configure_logging(settings.get("log_level") or "INFO", _flag(settings.get("access_log")))
    freeze = apply_runtime(settings)
    app = create_app(bootstrap(settings))
    if freeze:
        freeze_startup_objects()
    return app
