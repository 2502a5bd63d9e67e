"""The clock the accounts slice stamps its events with."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["Clock"]


class Clock:
    """Now, in UTC. Tests replace it to place events at chosen instants."""

    def now(self) -> datetime:
        return datetime.now(UTC)
