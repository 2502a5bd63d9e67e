"""Helpers for tests on the real MongoDB-wire server (``scripts/servers/mongo``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

__all__ = [
    "MONGO_URL_VARIABLE",
    "drop_created_databases",
    "drop_database",
    "mongo_url",
    "unique_database",
]

MONGO_URL_VARIABLE = "BALANCE_MONGO_URL"

# Databases the tests created in this session; dropped at its end (drop_created_databases),
# so the shared server does not keep one per test that forgets its own.
created_databases: set[str] = set()


def mongo_url() -> str:
    """The server's URL; without one the test fails on CI (CI=true) and is skipped elsewhere."""
    url = os.environ.get(MONGO_URL_VARIABLE, "")
    if url:
        return url
    reason = (
        f"{MONGO_URL_VARIABLE} is not set: start the server with `scripts/servers/mongo start` "
        "and `eval export $(scripts/servers/mongo env)`"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def unique_database() -> str:
    """A database of the test's own: another engineer or test may use the same server."""
    name = f"test_balance_{uuid.uuid4().hex[:12]}"
    created_databases.add(name)
    return name


async def drop_database(url: str, name: str) -> None:
    created_databases.discard(name)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=3000
    )
    try:
        await client.drop_database(name)
    finally:
        await client.close()


def drop_created_databases() -> None:
    """Drop the databases ``unique_database`` named in this session and no test dropped itself
    (best effort)."""
    url = os.environ.get(MONGO_URL_VARIABLE, "")
    if not url or not created_databases:
        return

    async def drop_all() -> None:
        for name in sorted(created_databases):
            with contextlib.suppress(PyMongoError):
                await drop_database(url, name)

    asyncio.run(drop_all())
