"""A stream's partition is the one a Java client's default partitioner picks for its key:
Kafka's own test vectors for ``Utils.murmur2``, and the positive-modulo step on top."""

from __future__ import annotations

import pytest

from plugins.kafka.partitioner import murmur2, partition_for

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
