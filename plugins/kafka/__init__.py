"""The Kafka event store: the topic is the source of truth, a local SQLite file is its index."""

from plugins.kafka.config import KafkaConfig
from plugins.kafka.store import KafkaEventStore
from plugins.kafka.subscription import KafkaSubscription

__all__ = ["KafkaConfig", "KafkaEventStore", "KafkaSubscription"]
