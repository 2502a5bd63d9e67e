"""Filling a Kafka topic with accounts through the product's own write path: a
``KafkaEventStore`` owning every partition, and the accounts repository on it (``bench.streams``),
whose every append hands the store the snapshot of the state it leads to. The partition writers
then write the events, each stream's head and each partition's watermark, in their own
transactions (plugins/kafka/head_writes.py), exactly as a running node does.

Many accounts are built at once (``in_flight``), so that each partition's writer has many appends
queued and commits them in batches; the store is closed at the end (its partitions handed back).
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

from bench.streams import build_account
from handlers.accounts.repositories import Accounts
from plugins.kafka.config import KafkaConfig
from plugins.kafka.store import KafkaEventStore

__all__ = ["IN_FLIGHT", "fill_accounts"]

IN_FLIGHT: Final = 256  # accounts being built at once


async def fill_accounts(
    config: KafkaConfig, accounts: int, length: int, in_flight: int = IN_FLIGHT
) -> float:
    """``accounts`` new accounts of ``length`` events each, appended through a store on
    ``config``, a new topic (the store creates it and its heads topic); the seconds taken."""
    store = KafkaEventStore(config)
    await store.start()
    try:
        repository = Accounts(store, store)
        left = iter(range(accounts))
        started = time.perf_counter()

        async def builder() -> None:
            for _ in left:
                await build_account(repository, length)

        await asyncio.gather(*(builder() for _ in range(min(in_flight, accounts))))
        seconds = time.perf_counter() - started
        count = await store.event_count()
    finally:
        await store.close()
    if count != accounts * length:
        raise RuntimeError(f"the fill stored {count} events, not {accounts * length}")
    return seconds
