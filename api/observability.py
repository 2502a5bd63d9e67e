"""Request ids, metrics and JSON logs, in one cheap ASGI middleware plus a logging setup.

Metrics use ``prometheus-client`` for the exposition format and the process collectors, with one
registry per app (tests build many apps in one process; the global registry would refuse the
second). Litestar's ``PrometheusPlugin`` is not used: it builds a ``Request`` and four labelled
metric lookups per request, keeps its metrics in a class-level dict shared by every app, and a
request-id middleware would still be needed beside it. Here one middleware does both, and the
labelled children are cached, so a request costs a dict lookup, an increment and an observe.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from core.diagnostics import Report, Reporting
from core.http.request_id import REQUEST_ID, new_request_id

__all__ = [
    "METRICS_CONTENT_TYPE",
    "JsonFormatter",
    "Metrics",
    "ObservabilityMiddleware",
    "backend_reports",
    "configure_logging",
    "write_logs_directly",
]

# Without its charset parameter: Litestar appends "; charset=utf-8" to every text/ media type.
METRICS_CONTENT_TYPE: Final = ";".join(
    part for part in CONTENT_TYPE_LATEST.split(";") if not part.strip().startswith("charset=")
)
# What a client may send as X-Request-ID; anything else is replaced, so logs stay clean.
_VALID_ID: Final = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_access_log = logging.getLogger("balance.access")
log = logging.getLogger(__name__)


class _Projection(Collector):
    def __init__(self, applied: Callable[[], int]) -> None:
        self._applied = applied

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "balance_projection_events", "Events the in-process projector has applied"
        )
        family.add_metric([], self._applied())
        yield family


def backend_reports(backends: Mapping[str, object]) -> dict[str, Report]:
    """What each backend that reports on itself (``core.diagnostics``) tells now, by port."""
    reports: dict[str, Report] = {}
    for port, backend in backends.items():
        if isinstance(backend, Reporting):
            try:
                reports[port] = backend.report()
            except Exception:
                log.exception("the %s backend could not report", port)
    return reports


class _Backends(Collector):
    """The samples the backends report, as ``balance_<name>``."""

    def __init__(self, backends: Callable[[], Mapping[str, object]]) -> None:
        self._backends = backends

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for report in backend_reports(self._backends()).values():
            for sample in report.samples:
                name = f"balance_{sample.name}"
                family = families.get(name)
                if family is None:
                    kind = CounterMetricFamily if sample.kind == "counter" else GaugeMetricFamily
                    family = families[name] = kind(name, sample.help, labels=list(sample.labels))
                family.add_metric(list(sample.labels.values()), sample.value)
        yield from families.values()


class ForwardCounts(Protocol):
    """What the forwarder counts (``core.http.forwarding.Forwarder``)."""

    @property
    def forwarded(self) -> int: ...

    @property
    def unreachable(self) -> int: ...


class _Forwarding(Collector):
    def __init__(self, counts: ForwardCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "balance_forwarded_requests",
            "Commands forwarded to the instance that writes their stream, by outcome: "
            "answered by it, or not (unreachable or timed out)",
            labels=["outcome"],
        )
        family.add_metric(["answered"], self._counts.forwarded)
        family.add_metric(["unreachable"], self._counts.unreachable)
        yield family


class Metrics:
    """The app's Prometheus registry: HTTP requests by route template, durations, process, the
    projection's progress, the forwarded commands, and what the backends report about
    themselves."""

    def __init__(
        self,
        projected: Callable[[], int] | None = None,
        backends: Callable[[], Mapping[str, object]] | None = None,
        forwarded: ForwardCounts | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        if projected is not None:
            self.registry.register(_Projection(projected))
        if backends is not None:
            self.registry.register(_Backends(backends))
        if forwarded is not None:
            self.registry.register(_Forwarding(forwarded))
        self._requests = Counter(
            "balance_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "balance_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(method, route, str(status)),
                self._duration.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ObservabilityMiddleware:
    """Accepts or generates ``X-Request-ID`` (returned on the response, visible to handlers and
    logs through a context variable), counts and times the request, and writes the access log
    line when that is switched on."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        raw: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _VALID_ID.fullmatch(value):
                    raw = value
                break
        request_id = raw.decode() if raw is not None else new_request_id()
        encoded = raw if raw is not None else request_id.encode()
        token = REQUEST_ID.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers")
                if isinstance(headers, list):
                    headers.append((b"x-request-id", encoded))
                else:
                    message["headers"] = [*(headers or ()), (b"x-request-id", encoded)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            self.metrics.observe(scope["method"], route, status, elapsed)
            if self.access_log:
                _access_log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={"route": route, "status": status, "ms": round(elapsed * 1000, 3)},
                )
            REQUEST_ID.reset(token)


# ---- logs ----

_STANDARD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)


def _default(value: object) -> str:
    return repr(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras, exception."""

    _encoder = msgspec.json.Encoder(enc_hook=_default)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._encoder.encode(entry).decode()


_listener: logging.handlers.QueueListener | None = None


def configure_logging(level: str = "INFO", access_log: bool = False) -> None:
    """JSON lines on stderr. Records are formatted where they are logged (so the request id is
    known) and written by a background thread, so a slow terminal never stalls the event loop.
    Per-request lines (the access log, the mediator's request log) only when ``access_log``."""
    global _listener
    if _listener is not None:
        atexit.unregister(_listener.stop)
        _listener.stop()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(message)s"))
    _listener = logging.handlers.QueueListener(records, stream)
    _listener.start()
    atexit.register(_listener.stop)
    handler = logging.handlers.QueueHandler(records)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    per_request = logging.INFO if access_log else logging.WARNING
    for name in ("balance.access", "balance.requests"):
        logging.getLogger(name).setLevel(per_request)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def write_logs_directly() -> None:
    """From now on, write each record on the thread that logs it, after writing those queued.
    For the end of a server process: uvicorn ends a worker by raising the SIGTERM it caught once
    it has shut down, and the process then dies without draining the queue."""
    global _listener
    if _listener is None:
        return
    atexit.unregister(_listener.stop)
    _listener.stop()
    _listener = None
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, logging.handlers.QueueHandler):
            root.removeHandler(old)
    direct = logging.StreamHandler(sys.stderr)
    direct.setFormatter(JsonFormatter())
    root.addHandler(direct)
