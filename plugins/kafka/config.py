"""The Kafka backend's settings, from ``BALANCE_KAFKA_*`` (or a ``[kafka]`` TOML table)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Self

from core.config import ConfigError, Settings, Unset, declare

__all__ = ["INDEX_FILE", "SETTINGS", "KafkaConfig", "advertised_url"]

INDEX_FILE: Final = "kafka-index.db"

SETTINGS: Final = declare(
    "kafka",
    bootstrap=Unset(
        "the brokers, `host:port,...`; a missing one fails at start-up naming the variable",
        "required with `kafka`",
    ),
    topic=("the events topic; created at start if missing", "balance.events"),
    partitions=("the topic's partitions, when this creates it", 3),
    replication=(
        "the topic's replication factor, when this creates it; `min.insync.replicas` is 1 "
        "(factor up to 2) or 2 (3 and more)",
        1,
    ),
    transactional_prefix=(
        "partition p's writer uses transactional id `<prefix>-p<p>`: the same prefix in every "
        "instance of a deployment (a new owner of a partition fences the old one with it)",
        "balance-writer",
    ),
    group_prefix=(
        "consumer groups are named `<prefix>-<projection>`; the partition owners' group "
        "`<prefix>-owners-<topic>`",
        "balance",
    ),
    append_timeout=(
        "seconds after which an append the broker has not acknowledged fails (503)",
        5.0,
    ),
    max_batch=("appends per Kafka transaction", 1000),
    batch_size=("events per subscription batch and catch-up read", 1000),
    readers=("read connections on the local index", 4),
)


def advertised_url(settings: Settings) -> str:
    """``advertised_url`` (``BALANCE_ADVERTISED_URL``, declared by the HTTP shell), else
    ``http://<host>:<port>`` from the server's own settings."""
    url = settings.get("advertised_url")
    if url:
        return url.rstrip("/")
    host = settings.get("host") or "127.0.0.1"
    return f"http://{host}:{settings.get_int('port', 8000)}"


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    """``bootstrap`` is required (``BALANCE_KAFKA_BOOTSTRAP``); everything else has a default."""

    bootstrap: str
    index_path: Path
    topic: str = "balance.events"
    partitions: int = 3
    replication: int = 1
    transactional_prefix: str = "balance-writer"
    group_prefix: str = "balance"
    # Where the other instances send the commands of the partitions this one owns.
    advertised_url: str = "http://127.0.0.1:8000"
    # An append that the broker has not acknowledged after this many seconds fails with
    # StoreUnavailableError (and nothing of it becomes visible).
    append_timeout: float = 5.0
    max_batch: int = 1000  # appends per Kafka transaction
    batch_size: int = 1000  # events per subscription batch
    readers: int = 4  # read connections on the local index
    # Joins the partition owners' group; False in a process that appends no event
    # (``Settings.writes_events``), which then places every stream elsewhere.
    owner: bool = True

    @property
    def owners_topic(self) -> str:
        """The compacted topic of the partitions' ownership records (directory.py)."""
        return f"{self.topic}.owners"

    @property
    def heads_topic(self) -> str:
        """The compacted topic of each stream's latest state (heads.py)."""
        return f"{self.topic}.heads"

    @property
    def owners_group(self) -> str:
        """The consumer group whose assignment decides which instance writes each partition."""
        return f"{self.group_prefix}-owners-{self.topic}"

    def transactional_id(self, partition: int) -> str:
        return f"{self.transactional_prefix}-p{partition}"

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        config = cls(
            bootstrap=settings.require("kafka_bootstrap"),
            index_path=settings.data_dir / INDEX_FILE,
            topic=settings.get("kafka_topic") or "balance.events",
            partitions=settings.get_int("kafka_partitions", 3),
            replication=settings.get_int("kafka_replication", 1),
            transactional_prefix=settings.get("kafka_transactional_prefix") or "balance-writer",
            group_prefix=settings.get("kafka_group_prefix") or "balance",
            append_timeout=settings.get_float("kafka_append_timeout", 5.0),
            max_batch=settings.get_int("kafka_max_batch", 1000),
            batch_size=settings.get_int("kafka_batch_size", 1000),
            readers=settings.get_int("kafka_readers", 4),
            advertised_url=advertised_url(settings),
            owner=settings.writes_events,
        )
        if settings.values.get("kafka_owner"):  # a key no longer defined, set by mistake
            raise ConfigError(
                "BALANCE_KAFKA_OWNER is no longer read: BALANCE_WRITES_EVENTS=off makes a process "
                "that appends no event (it takes no partition over)"
            )
        if config.partitions < 1 or config.replication < 1:
            raise ConfigError("BALANCE_KAFKA_PARTITIONS and BALANCE_KAFKA_REPLICATION must be >= 1")
        if config.append_timeout <= 0:
            raise ConfigError("BALANCE_KAFKA_APPEND_TIMEOUT must be more than 0 seconds")
        return config
