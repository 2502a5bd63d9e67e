"""Domain events to and from the stored record, upcasting old schemas on the way in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import msgspec

from core.records import EventMetadata, EventRecord
from handlers.accounts import events as ev

__all__ = ["UPCASTERS", "decode_event", "encode_event"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_TYPES: Final[dict[str, type[ev.Event]]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        ev.AccountOpened,
        ev.MoneyDeposited,
        ev.MoneyWithdrawn,
        ev.TransferDebited,
        ev.TransferCredited,
        ev.TransferRefunded,
        ev.AccountClosed,
        ev.TransferRequested,
        ev.TransferCompleted,
        ev.TransferFailed,
    )
}
_DECODERS: Final = {name: msgspec.json.Decoder(cls) for name, cls in _TYPES.items()}
_encoder: Final = msgspec.json.Encoder()


def _deposit_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Schema 1 called the free text "note"; schema 2 calls it "description" like every other event.
    data = dict(data)
    if "note" in data:
        data["description"] = data.pop("note")
    return data


# (type, schema) -> the function that turns that schema into the next one.
UPCASTERS: Final[dict[tuple[str, int], Upcaster]] = {
    ("MoneyDeposited", 1): _deposit_v1_to_v2,
}


def encode_event(
    event: ev.Event,
    *,
    stream_id: str,
    version: int,
    event_id: str,
    occurred_at: datetime,
    metadata: EventMetadata,
) -> EventRecord:
    name = type(event).__struct_config__.tag
    assert isinstance(name, str)
    return EventRecord(
        stream_id=stream_id,
        version=version,
        type=name,
        schema=ev.SCHEMAS[name],
        event_id=event_id,
        occurred_at=occurred_at,
        data=msgspec.Raw(_encoder.encode(event)),
        metadata=metadata,
    )


def decode_event(record: EventRecord) -> ev.Event:
    current = ev.SCHEMAS.get(record.type)
    if current is None:
        raise ValueError(
            f"unknown event type {record.type!r} at {record.stream_id}@{record.version}"
        )
    if record.schema == current:
        return _DECODERS[record.type].decode(record.data)
    data: dict[str, Any] = msgspec.json.decode(record.data)
    for schema in range(record.schema, current):
        data = UPCASTERS[(record.type, schema)](data)
    return msgspec.convert(data, _TYPES[record.type])
