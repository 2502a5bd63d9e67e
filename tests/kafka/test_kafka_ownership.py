"""Several Kafka event stores on one topic, against the real broker: the owners' group splits
the partitions, every instance agrees on who writes each one, a stream is written only by its
partition's owner, a closed instance's partitions are taken over (caught up first), and a
fenced writer commits nothing.

The instances run in this process, each with its own index file and advertised URL. The
verdicts are agreement and outcomes; the generous bounds only stop a hang."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from uuid import uuid4

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from core.errors import OwnedElsewhereError, StoreUnavailableError
from core.placement import HERE, Elsewhere, GainsWrites, Moving, Placement
from core.records import EventRecord, decode_record
from plugins.kafka.config import INDEX_FILE, KafkaConfig
from plugins.kafka.directory import Owner, announce
from plugins.kafka.partitioner import partition_for
from plugins.kafka.store import KafkaEventStore
from tests.kafka.helpers import read_topic, unique_topic
from tests.support import event_record

pytestmark = pytest.mark.kafka

PARTITIONS = 6
SETTLE_BOUND = 90.0  # against a hang only: the verdict is agreement, not speed

log = logging.getLogger(__name__)


def config(bootstrap: str, tmp_path: Path, topic: str, name: str) -> KafkaConfig:
    return KafkaConfig(
        bootstrap=bootstrap,
        index_path=tmp_path / name / INDEX_FILE,
        topic=topic,
        partitions=PARTITIONS,
        transactional_prefix=f"{topic}-w",
        group_prefix=topic,
        advertised_url=f"http://{name}.test:8000",
    )


def stream_in(partition: int) -> str:
    """A new stream whose events go to ``partition``."""
    while True:
        stream = f"account-{uuid4().hex}"
        if partition_for(stream, PARTITIONS) == partition:
            return stream


def records(stream: str, count: int, after: int = 0) -> list[EventRecord]:
    return [event_record(stream, after + n) for n in range(1, count + 1)]


@pytest.fixture
def topic() -> str:
    return unique_topic("test.kafka-owners")


@pytest.fixture
async def instances(
    bootstrap: str, tmp_path: Path, topic: str
) -> AsyncIterator[Callable[[str], KafkaEventStore]]:
    """Starts instances by name; closes those still open at the end."""
    async with AsyncExitStack() as stack:
        started: list[KafkaEventStore] = []

        def make(name: str) -> KafkaEventStore:
            store = KafkaEventStore(config(bootstrap, tmp_path, topic, name))
            started.append(store)
            stack.push_async_callback(store.close)
            return store

        yield make


async def settle(stores: list[KafkaEventStore], streams: list[str]) -> dict[int, KafkaEventStore]:
    """Poll until every stream has exactly one instance answering Here and every other one
    answers Elsewhere(that instance's URL); returns each partition's owner."""
    deadline = time.monotonic() + SETTLE_BOUND
    while True:
        owners = agreed_owners(stores, streams)
        if owners is not None:
            return owners
        assert time.monotonic() < deadline, placements(stores, streams)
        await asyncio.sleep(0.2)


def agreed_owners(
    stores: list[KafkaEventStore], streams: list[str]
) -> dict[int, KafkaEventStore] | None:
    owners: dict[int, KafkaEventStore] = {}
    for stream in streams:
        answers = [store.placement.place(stream) for store in stores]
        here = [store for store, answer in zip(stores, answers, strict=True) if answer == HERE]
        if len(here) != 1:
            return None
        url = Elsewhere(here[0].config.advertised_url)
        if any(answer not in (HERE, url) for answer in answers):
            return None
        owners[partition_for(stream, PARTITIONS)] = here[0]
    return owners


def placements(stores: list[KafkaEventStore], streams: list[str]) -> list[list[Placement]]:
    return [[store.placement.place(stream) for store in stores] for stream in streams]


async def test_the_group_splits_the_partitions_and_every_instance_agrees_on_their_owners(
    instances: Callable[[str], KafkaEventStore],
) -> None:
    stores = [instances(name) for name in ("a", "b", "c")]
    for store in stores:
        await store.start()
    streams = [stream_in(p) for p in range(PARTITIONS)]

    owners = await settle(stores, streams)

    assert {store.config.advertised_url for store in owners.values()} == {
        store.config.advertised_url for store in stores
    }
    for store in stores:
        owned = store.writer.owned()
        assert owned
        assert all(owned.values())  # taken over, caught up
        assert set(owned) == {p for p, owner in owners.items() if owner is store}
        report = store.report()  # what /health/ready and /metrics show
        assert report.partitions == dict.fromkeys(owned, True)
        takeovers = [s.value for s in report.samples if s.name == "kafka_takeovers"]
        assert takeovers == [store.writer.takeovers]
        assert store.writer.takeovers >= len(owned)


async def test_a_process_that_only_reads_owns_nothing_and_places_every_stream_elsewhere(
    instances: Callable[[str], KafkaEventStore], bootstrap: str, tmp_path: Path, topic: str
) -> None:
    writer = instances("a")
    await writer.start()
    reader = KafkaEventStore(replace(config(bootstrap, tmp_path, topic, "r"), owner=False))
    await reader.start()
    try:
        streams = [stream_in(p) for p in range(PARTITIONS)]
        await settle([writer, reader], streams)
        assert reader.writer.owned() == {}
        assert len(writer.writer.owned()) == PARTITIONS
        with pytest.raises(OwnedElsewhereError):
            await reader.append(streams[0], 0, records(streams[0], 1))
    finally:
        await reader.close()


async def test_an_append_to_a_stream_owned_elsewhere_is_refused_and_writes_nothing(
    instances: Callable[[str], KafkaEventStore], bootstrap: str, topic: str
) -> None:
    stores = [instances("a"), instances("b")]
    for store in stores:
        await store.start()
    streams = [stream_in(p) for p in range(PARTITIONS)]
    owners = await settle(stores, streams)
    stream = next(s for s in streams if owners[partition_for(s, PARTITIONS)] is stores[1])

    with pytest.raises(OwnedElsewhereError) as refused:
        await stores[0].append(stream, 0, records(stream, 1))

    assert refused.value.url == stores[1].config.advertised_url
    assert [r.version for r in await stores[1].append(stream, 0, records(stream, 1))] == [1]
    written = [decode_record(m.value()) for m in read_topic(bootstrap, topic)]
    assert [(r.stream_id, r.version) for r in written] == [(stream, 1)]


async def test_a_closed_instances_partitions_are_taken_over_after_a_catch_up(
    instances: Callable[[str], KafkaEventStore],
) -> None:
    first, second = instances("a"), instances("b")
    await first.start()
    await second.start()
    streams = [stream_in(p) for p in range(PARTITIONS)]
    owners = await settle([first, second], streams)
    for stream in streams:  # each written by its partition's owner
        await owners[partition_for(stream, PARTITIONS)].append(stream, 0, records(stream, 2))
    moved = [s for s in streams if owners[partition_for(s, PARTITIONS)] is second]
    takeovers = first.writer.takeovers
    assert moved
    told: list[bool] = []  # each take-over is told to the listeners (``GainsWrites``)
    assert isinstance(first.placement, GainsWrites)
    first.placement.on_gained(lambda: told.append(True))

    closed_at = time.monotonic()
    await second.close()
    await settle([first], streams)
    log.info("partitions moved %.1f s after the owner closed", time.monotonic() - closed_at)

    assert first.writer.takeovers == takeovers + len({partition_for(s, PARTITIONS) for s in moved})
    assert len(told) == first.writer.takeovers - takeovers
    for stream in streams:
        assert [r.version for r in await first.read(stream)] == [1, 2]
        appended = await first.append(stream, 2, records(stream, 1, after=2))
        assert [r.version for r in appended] == [3]


async def test_every_instance_indexes_the_partitions_written_elsewhere(
    instances: Callable[[str], KafkaEventStore],
) -> None:
    first, second = instances("a"), instances("b")
    await first.start()
    await second.start()
    streams = [stream_in(p) for p in range(PARTITIONS)]
    owners = await settle([first, second], streams)
    for stream in streams:
        await owners[partition_for(stream, PARTITIONS)].append(stream, 0, records(stream, 2))

    for reader in (first, second):
        deadline = time.monotonic() + SETTLE_BOUND
        for stream in streams:
            while await reader.stream_version(stream) != 2:
                assert time.monotonic() < deadline, (reader.config.advertised_url, stream)
                await asyncio.sleep(0.1)
            assert [r.version for r in await reader.read(stream)] == [1, 2]


async def test_a_fenced_writer_commits_nothing_and_stops_writing_its_partition(
    instances: Callable[[str], KafkaEventStore], bootstrap: str, topic: str
) -> None:
    store = instances("a")
    await store.start()
    streams = [stream_in(p) for p in range(PARTITIONS)]
    await settle([store], streams)
    stream = streams[2]
    await store.append(stream, 0, records(stream, 1))

    # Another process initialises the partition's transactional id: the store is a zombie.
    usurper = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{topic}-w-p2"})
    usurper.init_transactions(30)

    lost = records(stream, 1, after=1)
    with pytest.raises(StoreUnavailableError):
        await store.append(stream, 1, lost)
    assert isinstance(store.placement.place(stream), Moving)  # not its partition any more
    with pytest.raises(StoreUnavailableError):
        await store.append(stream, 1, lost)
    other = streams[3]  # the other partitions are still written here
    assert [r.version for r in await store.append(other, 0, records(other, 1))] == [1]

    written = {decode_record(m.value()).event_id for m in read_topic(bootstrap, topic)}
    assert not written & {r.event_id for r in lost}
    assert len(written) == 2


async def test_a_later_owners_record_stops_the_writes_before_the_group_tells(
    instances: Callable[[str], KafkaEventStore], bootstrap: str, topic: str
) -> None:
    store = instances("a")
    await store.start()
    streams = [stream_in(p) for p in range(PARTITIONS)]
    await settle([store], streams)
    stream = streams[1]

    # Another instance took partition 1 over (fenced, caught up, announced) while this one's
    # group membership has not heard of it yet: it still holds the assignment.
    usurper = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{topic}-w-p1"})
    usurper.init_transactions(30)
    announce(usurper, store.config, Owner(1, "http://usurper.test:8000", "usurper"), None)

    deadline = time.monotonic() + SETTLE_BOUND
    while store.placement.place(stream) != Elsewhere("http://usurper.test:8000"):
        assert time.monotonic() < deadline, store.placement.place(stream)
        await asyncio.sleep(0.1)
    assert set(store.writer.owned()) == set(range(PARTITIONS)) - {1}
    with pytest.raises(OwnedElsewhereError):
        await store.append(stream, 0, records(stream, 1))
    assert read_topic(bootstrap, topic) == []


async def test_a_take_over_fences_the_previous_writer_whose_commit_then_fails(
    instances: Callable[[str], KafkaEventStore], bootstrap: str, topic: str
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    # The previous owner of partition 4, with a transaction open when the group moves it.
    zombie = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{topic}-w-p4"})
    zombie.init_transactions(30)
    zombie.begin_transaction()
    stream = stream_in(4)
    zombie.produce(topic, key=stream.encode(), value=b"{}", partition=4)
    assert zombie.flush(30) == 0

    store = instances("a")
    await store.start()  # takes every partition over
    await settle([store], [stream])

    with pytest.raises(KafkaException):
        zombie.commit_transaction(30)
    assert read_topic(bootstrap, topic) == []  # nothing of the zombie is visible
    assert [r.version for r in await store.append(stream, 0, records(stream, 1))] == [1]
