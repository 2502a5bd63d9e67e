"""The stream-heads topic: each stream's latest state, so a new node need not read the history.

``<topic>.heads`` is compacted and has as many partitions as the events topic: a stream's head
lives in the partition number of its events. Two kinds of record share it:

- key = the stream id: a ``StreamHead``, the stream's version, the offset of its last event in
  the events partition, and the aggregate's state at that version (or, when no state came with
  the append, the offset from which the stream's events must be replayed);
- key = ``WATERMARK_KEY``: a ``Watermark``, the events partition's offset below which every
  event's stream has a head here that covers it.

Both are written by the partition's owner in the same Kafka transaction as the events they
describe, so a ``read_committed`` reader sees a head and its events together or neither.
"""

from __future__ import annotations

from typing import Final

import msgspec
from confluent_kafka.admin import AdminClient

from plugins.kafka.config import KafkaConfig
from plugins.kafka.topic import create_topic

__all__ = [
    "WATERMARK_KEY",
    "StreamHead",
    "Watermark",
    "create_heads_topic",
    "decode_head",
    "decode_watermark",
    "encode_head",
    "encode_watermark",
]

# No stream id starts with a NUL byte, so the watermark never shares a key with a stream.
WATERMARK_KEY: Final = b"\x00watermark"


class StreamHead(msgspec.Struct, frozen=True, omit_defaults=True):
    """A stream as of its last committed append.

    ``state`` is the aggregate's snapshot at ``version`` (``schema`` says how to read it), so
    a reader needs none of the stream's events. Without a state, ``replay_from`` is the events
    partition's offset of the stream's first event after what a reader can rebuild from, and
    the events from there on must be read.
    """

    version: int
    offset: int  # the events partition's offset of the event numbered ``version``
    schema: int = 0
    state: msgspec.Raw | None = None
    replay_from: int | None = None


class Watermark(msgspec.Struct, frozen=True):
    """Every event below ``next_offset`` in the events partition is covered by its stream's
    head (that head's version is at least the event's)."""

    next_offset: int


class _StoredHead(msgspec.Struct, frozen=True):
    """A head as decoded: msgspec reads no ``Raw | None``, so an absent (or null) state is an
    empty ``Raw`` here."""

    version: int
    offset: int
    schema: int = 0
    state: msgspec.Raw = msgspec.Raw()
    replay_from: int | None = None


_encode = msgspec.json.Encoder().encode
_decode_head = msgspec.json.Decoder(_StoredHead).decode
_decode_watermark = msgspec.json.Decoder(Watermark).decode


def encode_head(head: StreamHead) -> bytes:
    return _encode(head)


def encode_watermark(watermark: Watermark) -> bytes:
    return _encode(watermark)


def decode_head(value: bytes | None) -> StreamHead | None:
    """A head as read from the topic; None for a value that is not one (or a tombstone)."""
    try:
        stored = _decode_head(value or b"")
    except msgspec.DecodeError:
        return None
    state = stored.state if bytes(stored.state) not in (b"", b"null") else None
    return StreamHead(stored.version, stored.offset, stored.schema, state, stored.replay_from)


def decode_watermark(value: bytes | None) -> Watermark | None:
    try:
        return _decode_watermark(value or b"")
    except msgspec.DecodeError:
        return None


def create_heads_topic(admin: AdminClient, config: KafkaConfig, partitions: int) -> None:
    """Create ``<topic>.heads`` if missing, with the events topic's partition count, compacted
    (only each stream's last head matters)."""
    create_topic(admin, config, config.heads_topic, partitions, {"cleanup.policy": "compact"})
