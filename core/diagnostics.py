"""What a backend tells about itself beyond "ready": facts for ``/health/ready`` and samples for
``/metrics``. Optional: the shell asks each backend that implements ``Reporting``, and shows what
it answers under the backend's port, without knowing what the facts mean."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

__all__ = ["Report", "Reporting", "Sample"]


class Sample(msgspec.Struct, frozen=True):
    """One Prometheus sample: ``balance_<name>`` (a counter is exposed as ``<name>_total``)."""

    name: str
    help: str
    value: float
    kind: Literal["gauge", "counter"] = "gauge"
    labels: dict[str, str] = msgspec.field(default_factory=dict)


class Report(msgspec.Struct, frozen=True):
    details: dict[str, Any] = msgspec.field(default_factory=dict)  # JSON-able
    samples: list[Sample] = msgspec.field(default_factory=list)
    # A partitioned store: the partitions this process writes, each caught up (writing) or not
    # yet (being taken over).
    partitions: dict[int, bool] = msgspec.field(default_factory=dict)


@runtime_checkable
class Reporting(Protocol):
    def report(self) -> Report:
        """The backend's facts now: cheap and non-blocking (called per health check and scrape)."""
        ...
