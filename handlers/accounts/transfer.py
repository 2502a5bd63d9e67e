"""The transfer process manager's own stream: requested, then completed or failed."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec

from core.records import EventRecord
from handlers.accounts import events as ev
from handlers.accounts.codec import decode_event

__all__ = ["TRANSFER_KIND", "TransferState", "transfer_stream"]

TransferStatus = Literal["new", "pending", "completed", "failed"]


def transfer_stream(transfer_id: str) -> str:
    return f"transfer-{transfer_id}"


class TransferState(msgspec.Struct, frozen=True):
    id: str
    version: int = 0
    source: str = ""
    destination: str = ""
    amount: int = 0
    currency: str = ""
    owner: str = ""  # the source's owner: who may see the transfer
    description: str | None = None
    status: TransferStatus = "new"
    reason: str | None = None
    requested_at: datetime | None = None
    command_hash: str | None = None
    actor: str | None = None


def evolve(state: TransferState, record: EventRecord) -> TransferState:
    event = decode_event(record)
    match event:
        case ev.TransferRequested():
            return msgspec.structs.replace(
                state,
                version=record.version,
                source=event.source,
                destination=event.destination,
                amount=event.amount,
                currency=event.currency,
                owner=event.owner,
                description=event.description,
                status="pending",
                requested_at=record.occurred_at,
                command_hash=record.metadata.command_hash,
                actor=record.metadata.actor,
            )
        case ev.TransferCompleted():
            return msgspec.structs.replace(state, version=record.version, status="completed")
        case ev.TransferFailed(reason=reason):
            return msgspec.structs.replace(
                state, version=record.version, status="failed", reason=reason
            )
        case _:
            raise ValueError(f"{record.type} does not belong on a transfer stream")


class _TransferKind:
    snapshot_schema = 2
    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder(TransferState)

    def initial(self, stream_id: str) -> TransferState:
        return TransferState(id=stream_id.removeprefix("transfer-"))

    def evolve(self, state: TransferState, record: EventRecord) -> TransferState:
        return evolve(state, record)

    def version(self, state: TransferState) -> int:
        return state.version

    def encode_snapshot(self, state: TransferState) -> bytes:
        return self._encoder.encode(state)

    def decode_snapshot(self, data: bytes) -> TransferState:
        return self._decoder.decode(data)


TRANSFER_KIND: Final = _TransferKind()
