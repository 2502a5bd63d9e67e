"""The checks every event store makes on an append before it reaches storage."""

from __future__ import annotations

from collections.abc import Sequence

from core.records import EventRecord

__all__ = ["check_records"]


def check_records(stream_id: str, expected_version: int, events: Sequence[EventRecord]) -> None:
    """Reject a malformed append before it reaches the store: records of another stream, versions
    that are not ``expected_version + 1`` on, naive times, or one event id twice."""
    if expected_version < 0:
        raise ValueError(f"expected_version must be 0 or more, got {expected_version}")
    for offset, record in enumerate(events, start=1):
        if record.stream_id != stream_id:
            raise ValueError(f"record for stream {record.stream_id!r} appended to {stream_id!r}")
        if record.version != expected_version + offset:
            raise ValueError(
                f"stream {stream_id!r}: record version {record.version} should be "
                f"{expected_version + offset} (versions follow expected_version without gaps)"
            )
        if record.occurred_at.tzinfo is None:
            raise ValueError(f"event {record.event_id}: occurred_at must be timezone-aware")
    if len({record.event_id for record in events}) != len(events):
        raise ValueError(f"stream {stream_id!r}: one event id appears twice in the append")
