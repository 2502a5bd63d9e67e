"""Backends in process memory: the reference for the storage contract, and the test default."""

from plugins.memory.readmodel import MemoryReadModel
from plugins.memory.store import MemoryEventStore, MemorySubscription

__all__ = ["MemoryEventStore", "MemoryReadModel", "MemorySubscription"]
