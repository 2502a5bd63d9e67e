"""The rebuild claim on MongoDB: a lease document, renewed while it is held.

Processes that share a MongoDB database need not share a host, so the claim is a document in
``projection_claims``: who holds it, and when it expires. A holder renews it every third of the
lease; one that dies stops renewing, and its claim counts for nothing once it has expired (after
at most ``LEASE`` seconds). The expiry is the holder's clock, compared with the claimant's:
hosts whose clocks differ by a good part of the lease would misjudge it.

To claim, a process first inserts its own lease, then looks for another one; if it finds one it
removes its own and is refused. Two processes that claim at the same moment can thus both be
refused, never both admitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import uuid4

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from handlers.accounts.readmodel import ProjectionBusyError

__all__ = ["CLAIMS", "LEASE", "MongoClaim"]

log = logging.getLogger(__name__)

CLAIMS: Final = "projection_claims"
LEASE: Final = timedelta(seconds=30)
Doc = dict[str, Any]


def _holder() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


class MongoClaim:
    def __init__(self, claims: AsyncCollection[Doc], document: Doc, lease: timedelta) -> None:
        self._claims = claims
        self._document = document
        self._lease = lease
        self._renewing: asyncio.Task[None] | None = None

    @classmethod
    async def take(
        cls, claims: AsyncCollection[Doc], read_model: str, lease: timedelta = LEASE
    ) -> MongoClaim:
        now = datetime.now(UTC)
        await claims.delete_many({"expires_at": {"$lte": now}})
        document: Doc = {
            "_id": uuid4().hex,
            "mode": "rebuild",
            "holder": _holder(),
            "expires_at": now + lease,
        }
        await claims.insert_one(document)
        others: Doc = {
            "_id": {"$ne": document["_id"]},
            "mode": "rebuild",
            "expires_at": {"$gt": now},
        }
        found = await claims.find(others).to_list(10)
        if found:
            await claims.delete_one({"_id": document["_id"]})
            holders = ", ".join(f"rebuild by {doc['holder']}" for doc in found)
            raise ProjectionBusyError(read_model, f"claimed: {holders}")
        claim = cls(claims, document, lease)
        claim._renewing = asyncio.create_task(claim._renew_while_held())
        return claim

    async def renew(self) -> None:
        """Push the expiry one lease ahead (recreating the document if it was removed)."""
        self._document["expires_at"] = datetime.now(UTC) + self._lease
        await self._claims.replace_one({"_id": self._document["_id"]}, self._document, upsert=True)

    async def _renew_while_held(self) -> None:
        interval = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.renew()
            except PyMongoError as error:
                log.warning("could not renew the projection claim: %s", error)

    async def release(self) -> None:
        task, self._renewing = self._renewing, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await self._claims.delete_one({"_id": self._document["_id"]})
        except PyMongoError as error:  # it expires by itself
            log.warning("could not remove the projection claim: %s", error)
