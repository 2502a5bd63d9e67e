"""The ``audit`` plugin: an open behavior that records the type of every request, a subscriber
that writes an audit line for every event the projection commits, a service that keeps both
records, and a query that reads the first.

Installed, it is found through its entry point in the ``account_balance.plugins`` group; setting
``BALANCE_DISABLED_PLUGINS=audit`` keeps it out.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from core.container import Container
from core.hookspecs import hookimpl
from core.messages import Request
from core.registry import Registry
from handlers.accounts.notifications import EventsProjected

__all__ = ["AuditEvents", "AuditLog", "CountRequests", "CountRequestsHandler", "RecordRequests"]

R = TypeVar("R")
log = logging.getLogger("balance.audit")


class AuditLog:
    """The service: request type names, in the order the behavior saw them, and one audit line
    per projected event."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.lines: list[str] = []


@dataclass(frozen=True, slots=True)
class CountRequests(Request[int]):
    """How many requests the audit behavior has seen, this one included."""


class RecordRequests:
    """Open behavior (every request type): records the name, then lets the request through."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    async def handle(self, request: Any, call_next: Callable[[], Awaitable[R]]) -> R:
        self._log.seen.append(type(request).__name__)
        return await call_next()


class CountRequestsHandler:
    # A class, not an instance, is registered: the host builds it with ``log`` from the container.
    def __init__(self, log: AuditLog) -> None:
        self._log = log

    async def handle(self, query: CountRequests) -> int:
        return len(self._log.seen)


class AuditEvents:
    """Subscriber of ``EventsProjected``: one line per event (stream, version, type, actor),
    logged to ``balance.audit`` and kept in the log."""

    def __init__(self, log_: AuditLog) -> None:
        self._log = log_

    async def handle(self, notification: EventsProjected) -> None:
        for event in notification.events:
            actor = event.metadata.actor or "-"
            line = f"{event.stream_id} v{event.version} {event.type} by {actor}"
            self._log.lines.append(line)
            log.info("audit %s", line)


@hookimpl
def balance_services(container: Container) -> None:
    # A hookimpl may take fewer arguments than its spec: this one needs no settings.
    container.register_singleton(AuditLog, AuditLog)


@hookimpl
def balance_register(registry: Registry) -> None:
    registry.behavior(RecordRequests)
    registry.handler(CountRequests, CountRequestsHandler)
    registry.notification_handler(EventsProjected, AuditEvents)
