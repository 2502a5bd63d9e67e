"""A stream's partition is the one a Java client's default partitioner picks for its key:
Kafka's own test vectors for ``Utils.murmur2``, and the positive-modulo step on top; the
partition owners compute it once per stream and keep the last ones in a bounded cache."""

from __future__ import annotations

from typing import cast

import pytest

from plugins.kafka.config import KafkaConfig
from plugins.kafka.directory import Owner, OwnerDirectory
from plugins.kafka.owners import PartitionOwners
from plugins.kafka.partitioner import PARTITION_CACHE_SIZE, murmur2, partition_for, partition_of

# org.apache.kafka.common.utils.UtilsTest#testMurmur2
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), JAVA_MURMUR2.items())
def test_murmur2_is_kafkas(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@pytest.mark.parametrize("partitions", [1, 3, 6, 7])
def test_the_partition_is_the_positive_hash_modulo_the_partitions(partitions: int) -> None:
    for key, hashed in JAVA_MURMUR2.items():
        assert partition_for(key.decode(), partitions) == (hashed & 0x7FFFFFFF) % partitions


def test_the_owners_cached_partition_is_the_java_clients() -> None:
    partition_of.cache_clear()
    for partitions in (1, 3, 6, 7):
        for key, hashed in JAVA_MURMUR2.items():
            expected = (hashed & 0x7FFFFFFF) % partitions
            assert partition_of(key.decode(), partitions) == expected  # computed
            assert partition_of(key.decode(), partitions) == expected  # from the cache
    info = partition_of.cache_info()
    assert (info.misses, info.hits) == (4 * len(JAVA_MURMUR2), 4 * len(JAVA_MURMUR2))


def test_the_cache_is_bounded() -> None:
    partition_of.cache_clear()
    for number in range(PARTITION_CACHE_SIZE + 10):
        partition_of(f"account-{number}", 6)
    assert partition_of.cache_info().currsize == PARTITION_CACHE_SIZE
    misses = partition_of.cache_info().misses
    partition_of(f"account-{PARTITION_CACHE_SIZE + 9}", 6)  # the newest is kept
    assert partition_of.cache_info().misses == misses
    partition_of("account-0", 6)  # the oldest was let go
    assert partition_of.cache_info().misses == misses + 1


class _NoOwners:
    def owner(self, partition: int) -> Owner | None:
        return None


def test_a_commands_placement_and_writer_share_one_hash_of_its_stream() -> None:
    owners = PartitionOwners(cast(KafkaConfig, None), cast(OwnerDirectory, _NoOwners()), "here")
    owners.partitions = 6
    partition_of.cache_clear()

    assert owners.place("account-1") == owners.place("account-1")  # nobody owns it: moving
    assert owners.writer_of("account-1") is None

    info = partition_of.cache_info()
    assert (info.misses, info.hits) == (1, 2)
