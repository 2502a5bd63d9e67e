"""The queries of the Mongo read model (``plugins.mongo.readmodel``): accounts, statements,
feeds and transfers, read from the live generation. An account is read as its document overlaid
with its latest movement line, which holds its balance (see ``plugins.mongo.readmodel``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from bson import Int64

from handlers.accounts.readmodel import FeedPage, closing_of
from handlers.accounts.views import AccountView, Movement, TransferView
from plugins.mongo.connection import MongoConnection, reachable
from plugins.mongo.documents import (
    AccountDoc,
    CheckpointDoc,
    MovementDoc,
    TransferDoc,
    account_view,
    movement_range,
    movement_view,
    to_micros,
    transfer_view,
)
from plugins.mongo.writes import Doc

__all__ = ["MongoQueries"]


class MongoQueries(MongoConnection):
    """The ``AccountReadModel`` queries, and the projections' checkpoints."""

    async def checkpoint(self, projection: str) -> int:
        return await self._checkpoint(await self._live(), projection)

    async def _checkpoint(self, generation: int, projection: str) -> int:
        with reachable("checkpoint"):
            doc = await self._collection(CheckpointDoc, generation).find_one({"_id": projection})
        return 0 if doc is None else int(doc["position"])

    async def get_account(self, account_id: str) -> AccountView | None:
        generation = await self._live()
        with reachable("get_account"):
            doc = await self._collection(AccountDoc, generation).find_one({"_id": account_id})
            if doc is None:
                return None
            return account_view(doc, await self._latest_line(generation, account_id))

    async def _latest_line(self, generation: int, account_id: str) -> Doc | None:
        """The account's latest movement line (its balance and version), if it has one."""
        query = {"_id": movement_range(account_id, 0), "account": account_id}
        fields = {"balance_after": 1, "version": 1}
        movements = self._collection(MovementDoc, generation)
        return await movements.find_one(query, fields, sort=[("_id", -1)])

    async def list_accounts(
        self, owner: str | None, after: str | None, limit: int
    ) -> list[AccountView]:
        if limit <= 0:
            return []  # pymongo's limit(0) would mean "no limit"
        query: Doc = {}
        if owner is not None:
            query["owner"] = owner
        if after is not None:
            query["_id"] = {"$gt": after}
        generation = await self._live()
        with reachable("list_accounts"):
            accounts = self._collection(AccountDoc, generation)
            docs = await accounts.find(query).sort("_id", 1).limit(limit).to_list()
            lines = await asyncio.gather(
                *(self._latest_line(generation, doc["_id"]) for doc in docs)
            )
        return [account_view(doc, line) for doc, line in zip(docs, lines, strict=True)]

    async def statement(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime | None,
        after_version: int,
        limit: int,
    ) -> list[Movement]:
        when: Doc = {}
        if start is not None:
            when["$gte"] = Int64(to_micros(start))
        if end is not None:
            when["$lt"] = Int64(to_micros(end))
        generation = await self._live()
        with reachable("statement"):
            return await self._movements(generation, account_id, after_version, limit, when)

    async def _movements(
        self, generation: int, account_id: str, after_version: int, limit: int, when: Doc
    ) -> list[Movement]:
        if limit <= 0:
            return []  # pymongo's limit(0) would mean "no limit"
        # The _id range is the account's lines after ``after_version`` in version order; the
        # account field keeps out an account whose id extends this one ("a" and "a:b").
        query: Doc = {"_id": movement_range(account_id, after_version), "account": account_id}
        if when:
            query["occurred_us"] = when
        cursor = self._collection(MovementDoc, generation).find(query).sort("_id", 1).limit(limit)
        return [movement_view(doc) for doc in await cursor.to_list()]

    async def feed_page(self, account_id: str, after_version: int, limit: int) -> FeedPage:
        """Two finds, the account's first: ``_apply`` writes a batch's movements before its
        accounts, so a close read first comes with every movement before it."""
        generation = await self._live()
        with reachable("feed_page"):
            doc = await self._collection(AccountDoc, generation).find_one({"_id": account_id})
            movements = await self._movements(generation, account_id, after_version, limit, {})
        # A closed account's document holds the close's version, the last of its stream.
        return FeedPage(movements, closing_of(None if doc is None else account_view(doc)))

    async def get_transfer(self, transfer_id: str) -> TransferView | None:
        generation = await self._live()
        with reachable("get_transfer"):
            doc = await self._collection(TransferDoc, generation).find_one({"_id": transfer_id})
        return None if doc is None else transfer_view(doc)

    async def pending_transfers(self) -> list[str]:
        generation = await self._live()
        with reachable("pending_transfers"):
            transfers = self._collection(TransferDoc, generation)
            cursor = transfers.find({"status": "pending"}, {"_id": 1})
            docs = await cursor.sort("_id", 1).to_list()
        return [str(doc["_id"]) for doc in docs]
