"""The SQLite accounts read model: ``views.db`` in the data directory.

``apply`` writes a batch's view changes and the projection's checkpoint in one transaction, so
after a crash either both are there or neither is, and each event is applied exactly once. Every
change is also guarded by (stream, version) on its own, so applying a batch twice changes nothing.
The writes are set-based (``plugins.sqlite.view_writes``), the queries run on the reader pool
(``plugins.sqlite.view_reads``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from pathlib import Path

from core.errors import StoreUnavailableError
from core.eventsourcing.readers import ReaderPool
from core.eventsourcing.writer import GroupCommitWriter
from handlers.accounts.readmodel import ClaimMode, ViewChange
from handlers.accounts.views import AccountView, Movement, TransferView
from plugins.sqlite import view_reads
from plugins.sqlite.claims import FileClaim
from plugins.sqlite.schema import VIEWS_DDL, VIEWS_FILE
from plugins.sqlite.view_writes import BATCH_DDL, apply_batches, batch_parameters, micros

__all__ = ["SqliteReadModel"]


def _reset(connection: sqlite3.Connection) -> None:
    for table in ("accounts", "movements", "transfers", "checkpoints"):
        connection.execute(f"DELETE FROM {table}")


class SqliteReadModel:
    """``AccountReadModel`` and ``Lifecycle`` on ``<data_dir>/views.db``.

    Writes go through one writer thread; ``synchronous=NORMAL`` is enough here because the views
    and their checkpoint commit together: a power cut can only lose a tail of both, which the
    projection then replays from the event store.
    """

    def __init__(self, data_dir: Path, *, readers: int = 2) -> None:
        self.path = data_dir / VIEWS_FILE
        ddl = VIEWS_DDL + BATCH_DDL
        self._writer = GroupCommitWriter(self.path, ddl=ddl, synchronous="NORMAL")
        self._readers = ReaderPool(self.path, readers)

    async def start(self) -> None:
        if self._writer.alive:
            return
        try:
            await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        except OSError as error:
            raise StoreUnavailableError(f"cannot create {self.path.parent}: {error}") from error
        await self._writer.start()
        self._readers.start()

    async def close(self) -> None:
        await self._writer.close()
        await self._readers.close()

    async def ready(self) -> bool:
        return self._writer.alive

    async def checkpoint(self, projection: str) -> int:
        return await self._readers.run(partial(view_reads.checkpoint, projection))

    async def apply(self, projection: str, changes: Sequence[ViewChange], checkpoint: int) -> None:
        """The changes and the checkpoint (which never moves back) in one transaction."""
        parameters = batch_parameters(projection, changes, checkpoint)
        # One row is one statement: SQLite undoes it alone if it fails, and it commits alone.
        alone = len(parameters) == 1
        job = partial(apply_batches, parameters)
        await self._writer.submit(job, savepoint=not alone, autocommit=alone)

    async def reset(self) -> None:
        await self._writer.submit(_reset)

    async def claim(self, mode: ClaimMode) -> FileClaim:
        """See ``ProjectionClaims``: a lock on ``views.lock`` beside the database."""
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        lock = self.path.with_suffix(".lock")
        return FileClaim.take(lock, mode, f"the read model {self.path}")

    async def get_account(self, account_id: str) -> AccountView | None:
        return await self._readers.run(partial(view_reads.get_account, account_id))

    async def list_accounts(
        self, owner: str | None, after: str | None, limit: int
    ) -> list[AccountView]:
        return await self._readers.run(partial(view_reads.list_accounts, owner, after, limit))

    async def statement(
        self,
        account_id: str,
        start: datetime | None,
        end: datetime | None,
        after_version: int,
        limit: int,
    ) -> list[Movement]:
        query = partial(
            view_reads.statement, account_id, micros(start), micros(end), after_version, limit
        )
        return await self._readers.run(query)

    async def get_transfer(self, transfer_id: str) -> TransferView | None:
        return await self._readers.run(partial(view_reads.get_transfer, transfer_id))

    async def pending_transfers(self) -> list[str]:
        return await self._readers.run(view_reads.pending)
