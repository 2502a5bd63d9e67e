"""The rebuild claim on the real MongoDB-wire server: lease documents that keep a second rebuild
out, that expire when their holder stops renewing them, and that ``balance projections rebuild``
takes while live projectors carry on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from handlers.accounts.readmodel import ProjectionBusyError
from plugins.mongo.claims import CLAIMS, MongoClaim
from plugins.mongo.config import MongoConfig
from plugins.mongo.readmodel import MongoReadModel
from tests.support import running, settings_for

pytestmark = pytest.mark.mongo


@pytest.fixture
async def claims(
    mongo: MongoReadModel, mongo_config: MongoConfig
) -> AsyncIterator[AsyncCollection[dict[str, Any]]]:
    """The claims collection of the ``mongo`` read model's database, through a client of its own."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_config.url, tz_aware=True)
    try:
        yield client[mongo_config.database][CLAIMS]
    finally:
        await client.close()


async def test_a_rebuild_claim_excludes_another_until_released(
    mongo: MongoReadModel, claims: AsyncCollection[dict[str, Any]]
) -> None:
    rebuild = await mongo.claim()
    assert await claims.count_documents({"mode": "rebuild"}) == 1
    with pytest.raises(ProjectionBusyError, match=r"cannot rebuild .*rebuild by .* pid"):
        await mongo.claim()
    await rebuild.release()
    await (await mongo.claim()).release()
    # a refused claim leaves no document behind, a released one neither
    assert await claims.count_documents({}) == 0


async def test_a_lease_that_is_not_renewed_counts_for_nothing_once_expired(
    mongo: MongoReadModel, claims: AsyncCollection[dict[str, Any]]
) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    await claims.insert_one(
        {"_id": "crashed", "mode": "rebuild", "holder": "gone pid 1", "expires_at": past}
    )
    rebuild = await mongo.claim()
    assert await claims.count_documents({"_id": "crashed"}) == 0  # cleared on the way
    await rebuild.release()


async def test_renewing_pushes_the_expiry_a_lease_ahead(
    claims: AsyncCollection[dict[str, Any]],
) -> None:
    lease = timedelta(hours=1)
    claim = await MongoClaim.take(claims, "the read model", lease=lease)
    try:
        before = datetime.now(UTC)
        await claims.update_many({}, {"$set": {"expires_at": before}})  # about to expire
        await claim.renew()
        (document,) = await claims.find({}).to_list(None)
        assert document["expires_at"] >= before + lease - timedelta(seconds=1)
    finally:
        await claim.release()


async def test_a_rebuild_runs_while_a_projector_projects_and_a_second_is_refused(
    mongo_config: MongoConfig, tmp_path: Path
) -> None:
    # The claim is the read model's: the events may live anywhere (SQLite here).
    settings = replace(
        settings_for(
            "sqlite", tmp_path, mongo_url=mongo_config.url, mongo_database=mongo_config.database,
            mongo_generation_poll_ms="0",
        ),
        read_model="mongo",
    )  # fmt: skip
    async with running(settings) as live, running(settings, run_projector=False) as other:
        assert live.run_projector
        claim = await live.backends["read_model"].claim()
        try:
            with pytest.raises(ProjectionBusyError, match="cannot rebuild"):
                await other.projector.rebuild()
        finally:
            await claim.release()
        assert await other.projector.rebuild() == 0
