"""The ``kafka`` event store backend (a topic as the source of truth, a local SQLite index).

Settings: ``BALANCE_KAFKA_BOOTSTRAP`` (required), ``BALANCE_KAFKA_TOPIC`` (``balance.events``),
``BALANCE_KAFKA_PARTITIONS`` (3), ``BALANCE_KAFKA_REPLICATION`` (1),
``BALANCE_KAFKA_TRANSACTIONAL_PREFIX`` (``balance-writer``), ``BALANCE_KAFKA_GROUP_PREFIX``
(``balance``), ``BALANCE_KAFKA_APPEND_TIMEOUT`` (5 s), ``BALANCE_KAFKA_MAX_BATCH`` (1000
appends per transaction), ``BALANCE_KAFKA_BATCH_SIZE`` (1000 events per subscription batch),
``BALANCE_KAFKA_READERS`` (4); and ``BALANCE_ADVERTISED_URL``, where the other instances send
this one's commands. A process with ``BALANCE_WRITES_EVENTS=off`` takes no partition over.
See docs/kafka.md.

With this event store the instances share the topic's partitions: ``balance_services``
registers the store's ``StreamPlacement`` (which instance writes each stream).

The driver (confluent-kafka, the ``kafka`` extra) is imported only when the backend is built:
this module loads without it, and selecting the backend without it is a ``ConfigError``.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Final

from core.config import ConfigError, Setting, Settings
from core.container import Container
from core.hookspecs import hookimpl
from core.placement import StreamPlacement
from core.ports import EventStore
from core.registry import BackendOffer
from plugins.kafka.config import SETTINGS, KafkaConfig

if TYPE_CHECKING:
    from plugins.kafka.store import KafkaEventStore

__all__ = ["NAME", "balance_backends", "balance_services", "balance_settings", "plugin"]

NAME: Final = "kafka"
DRIVER: Final = "confluent_kafka"
INSTALL: Final = "pip install 'account-balance[kafka]'"


def _event_store(settings: Settings, container: Container) -> KafkaEventStore:
    try:
        from plugins.kafka.store import KafkaEventStore
    except ModuleNotFoundError as error:
        if error.name is None or error.name.partition(".")[0] != DRIVER:
            raise
        raise ConfigError(
            f"BALANCE_EVENT_STORE=kafka needs the Kafka driver ({DRIVER} is not installed): "
            f"{INSTALL}"
        ) from None
    return KafkaEventStore(KafkaConfig.from_settings(settings))


@hookimpl
def balance_backends() -> list[BackendOffer]:
    return [BackendOffer(port="event_store", name=NAME, factory=_event_store)]


@hookimpl
def balance_services(container: Container, settings: Settings) -> None:
    """The Kafka event store places each stream at its partition's owner."""
    if settings.event_store != NAME:
        return
    placement = getattr(container.resolve(EventStore), "placement", None)
    if isinstance(placement, StreamPlacement):
        container.register_instance(StreamPlacement, placement)


@hookimpl
def balance_settings() -> tuple[Setting, ...]:
    return SETTINGS


plugin: Final[ModuleType] = sys.modules[__name__]
