"""The Kafka store's settings as the kernel's settings give them (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, Settings, reading_only
from plugins.kafka.config import KafkaConfig


def kafka_settings(tmp_path: Path, **values: str) -> Settings:
    return Settings(
        event_store="kafka", data_dir=tmp_path, values={"kafka_bootstrap": "k:9092", **values}
    )


def test_a_process_that_writes_events_joins_the_owners_group(tmp_path: Path) -> None:
    assert KafkaConfig.from_settings(kafka_settings(tmp_path)).owner is True


def test_a_process_that_appends_no_event_owns_no_partition(tmp_path: Path) -> None:
    assert KafkaConfig.from_settings(reading_only(kafka_settings(tmp_path))).owner is False


@pytest.mark.parametrize("value", ["off", "on"])
def test_the_former_owner_setting_is_refused_naming_its_replacement(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        KafkaConfig.from_settings(kafka_settings(tmp_path, kafka_owner=value))
    assert "BALANCE_KAFKA_OWNER" in str(refused.value)
    assert "BALANCE_WRITES_EVENTS=off" in str(refused.value)
