"""Which partition a stream's events go to: the Java client's default partitioner for a keyed
record (``murmur2(key) & 0x7fffffff % partitions``), which librdkafka's ``murmur2_random``
reproduces. Every client that writes or routes a stream must agree on it, so this is the only
place the store computes it."""

from __future__ import annotations

from functools import lru_cache
from typing import Final

__all__ = ["PARTITION_CACHE_SIZE", "murmur2", "partition_for", "partition_of"]

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: a signed 32-bit hash."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(stream_id: str, partitions: int) -> int:
    """The partition of ``stream_id``'s events (the record key is the UTF-8 stream id)."""
    return (murmur2(stream_id.encode()) & 0x7FFFFFFF) % partitions


# A command asks for its stream's partition several times (its placement, the append, the
# store's writer): murmur2 runs once per stream, and the streams asked for last are kept.
PARTITION_CACHE_SIZE: Final = 16_384
partition_of: Final = lru_cache(maxsize=PARTITION_CACHE_SIZE)(partition_for)
