"""What the accounts slice publishes through the mediator, for any plugin to subscribe to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.messages import Notification
from core.records import EventRecord

__all__ = ["EventsProjected"]


@dataclass(frozen=True, slots=True)
class EventsProjected(Notification):
    """The projection committed these events into the read model (published after the commit,
    by the process that projected them; in append order within each stream). An event that
    process applies again, into a new generation after a rebuild's switch, is not published
    again."""

    events: Sequence[EventRecord]
