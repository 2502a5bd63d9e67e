"""The baseline of measure 2: the pyeventsourcing ``eventsourcing`` library (9.5.6) on its SQLite
persistence, with its own bank-account shape: an ``Aggregate`` with ``@event`` methods and an
``Application`` whose command is ``repository.get`` + method + ``save``.

Durability: the library sets WAL but never ``synchronous``, so it runs on the compiled default of
the ``sqlite3`` module. ``FullSyncFactory`` makes every pooled connection run
``PRAGMA synchronous=FULL`` explicitly (as ``events.db`` does), and ``synchronous_level`` reads
the value back from the library's own connection so the run records what was in force.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory

__all__ = ["Bank", "FullSyncFactory", "bank", "synchronous_level"]


class FullSyncPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        connection._sqlite_conn.execute("PRAGMA synchronous=FULL")
        return connection


class FullSyncFactory(SQLiteFactory):
    """The library's SQLite factory, with connections at ``synchronous=FULL``."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        default = self.datastore.pool
        self.datastore.pool = FullSyncPool(
            db_name=default.db_name, lock_timeout=default.lock_timeout
        )
        default.close()


class BankAccount(Aggregate):
    @event("Opened")
    def __init__(self, owner: str, currency: str) -> None:
        self.owner = owner
        self.currency = currency
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.balance += amount


class Bank(Application[UUID]):
    def open_account(self, owner: str) -> UUID:
        account = BankAccount(owner, "EUR")
        self.save(account)
        return account.id

    def deposit(self, account_id: UUID, amount: int) -> int:
        account: BankAccount = self.repository.get(account_id)
        account.deposit(amount)
        self.save(account)
        return account.balance

    def balance(self, account_id: UUID) -> int:
        account: BankAccount = self.repository.get(account_id)
        return account.balance


def bank(db_file: Path, cache: bool) -> Bank:
    """The library's application on ``db_file``; ``cache`` turns on its aggregate cache."""
    env = {
        "PERSISTENCE_MODULE": f"{__name__}:FullSyncFactory",
        "SQLITE_DBNAME": str(db_file),
    }
    if cache:
        env["AGGREGATE_CACHE_MAXSIZE"] = "10000"
    return Bank(env=env)


def synchronous_level(application: Bank) -> int:
    """``PRAGMA synchronous`` on one of the library's connections (2 is FULL)."""
    factory = application.factory
    assert isinstance(factory, SQLiteFactory)
    with factory.datastore.get_connection(commit=False) as connection:
        level: int = connection._sqlite_conn.execute("PRAGMA synchronous").fetchone()[0]
    return level
