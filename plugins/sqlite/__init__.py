"""Backends on SQLite files: durable (WAL, synchronous=FULL) and fast (group commit)."""

from plugins.sqlite.readmodel import SqliteReadModel
from plugins.sqlite.store import SqliteEventStore, SqliteSubscription

__all__ = ["SqliteEventStore", "SqliteReadModel", "SqliteSubscription"]
