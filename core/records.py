"""The stored form of an event, shared by every event store.

One record is one JSON document (``msgspec.json.encode(record)``): readable by any client of the
store, Kafka included. ``type`` and ``schema`` say how to read ``data``: a reader upcasts an old
``schema`` to the current one before decoding it.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

__all__ = ["EventMetadata", "EventRecord", "Snapshot", "encode_record", "decode_record"]


class EventMetadata(msgspec.Struct, frozen=True, omit_defaults=True):
    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    command_id: str | None = None
    command_hash: str | None = None


class EventRecord(msgspec.Struct, frozen=True, gc=False):
    """``gc=False``: a record holds only text, numbers, a time and its metadata, so it can be in
    no reference cycle, and the collector need not track it (a rebuild holds thousands)."""

    stream_id: str
    version: int
    type: str
    schema: int
    event_id: str
    occurred_at: datetime
    data: msgspec.Raw
    metadata: EventMetadata = EventMetadata()
    # Assigned by the store: a global order (SQLite) or the partition offset (Kafka); 0 before.
    position: int = 0


class Snapshot(msgspec.Struct, frozen=True):
    stream_id: str
    version: int
    schema: int
    state: msgspec.Raw


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(EventRecord)


def encode_record(record: EventRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(payload: bytes) -> EventRecord:
    return _decoder.decode(payload)
