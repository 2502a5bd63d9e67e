"""The backends the HTTP and lag benches run against, and why one cannot be measured.

A backend is a set of ``BALANCE_*`` variables, given both to the in-process application (through
``core.config.load_settings``) and to the server process, so both resolve the same settings.
Kafka + Mongo is measured when its servers are configured and its plugins exist; adding it is
then nothing more than making ``kafka_mongo()`` return no reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.common import JWT_SECRET, Outcome, Row
from core.config import Settings, load_settings
from core.plugins import builtin_plugins

__all__ = [
    "EMBEDDED",
    "Backend",
    "all_backends",
    "drop_own_names",
    "each_backend",
    "kafka_mongo",
]


@dataclass(frozen=True, slots=True)
class Backend:
    key: str
    label: str
    env: Mapping[str, str] = field(default_factory=dict)
    # HTTP closed-loop: the share of the baseline's req/s to reach.
    http_ratio: float = 0.5
    # HTTP open-loop (bench.latency): the p99 ceiling at the offered rate.
    latency_p99_ms: float = 10.0
    lag_p99_ms: float = 50.0
    # Why it is not measured in this run, or None.
    missing: str | None = None

    def server_env(self, data_dir: Path) -> dict[str, str]:
        return {
            **self.env,
            "BALANCE_DATA_DIR": str(data_dir),
            "BALANCE_JWT_SECRET": JWT_SECRET,
        }

    def settings(self, data_dir: Path) -> Settings:
        return load_settings(self.server_env(data_dir), config_file=None)

    def own_names(self, prefix: str) -> Backend:
        """This backend on a Kafka topic (with its transactional id and consumer groups) and a
        Mongo database of its own, so that a measure starts empty and shares nothing with another
        run or engineer on the same servers. Unchanged on the embedded backend."""
        if self.env.get("BALANCE_EVENT_STORE") != "kafka":
            return self
        name = f"{prefix}.{uuid.uuid4().hex[:12]}"
        return replace(
            self,
            env={
                **self.env,
                "BALANCE_KAFKA_TOPIC": name,
                "BALANCE_KAFKA_TRANSACTIONAL_PREFIX": f"{name}-w",
                "BALANCE_KAFKA_GROUP_PREFIX": name,
                "BALANCE_MONGO_DATABASE": name.replace(".", "_"),
            },
        )


def drop_own_names(settings: Settings) -> None:
    """Delete the topics (the events', the owner directory's, the stream heads') and the
    database a measure on ``own_names`` made (best effort; nothing to do on the embedded
    backend, whose files live in a temporary directory)."""
    if settings.event_store != "kafka":
        return
    topic, database = settings.get("kafka_topic") or "", settings.get("mongo_database")
    with contextlib.suppress(Exception):
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": settings.require("kafka_bootstrap")})
        topics = [topic, f"{topic}.owners", f"{topic}.heads"]
        for future in admin.delete_topics(topics, operation_timeout=10).values():
            with contextlib.suppress(Exception):
                future.result(15)
    with contextlib.suppress(Exception):
        from pymongo import MongoClient

        url = settings.require("mongo_url")
        client: MongoClient[dict[str, Any]]
        with MongoClient(url, serverSelectionTimeoutMS=3000) as client:
            client.drop_database(database or "")


EMBEDDED = Backend(
    "embedded",
    "embedded (SQLite)",
    {"BALANCE_EVENT_STORE": "sqlite", "BALANCE_READ_MODEL": "sqlite"},
)

_KAFKA_MONGO_VARS = ("BALANCE_KAFKA_BOOTSTRAP", "BALANCE_MONGO_URL")


def kafka_mongo() -> Backend:
    reasons: list[str] = []
    unset = [name for name in _KAFKA_MONGO_VARS if not os.environ.get(name)]
    if unset:
        reasons.append(f"{' and '.join(unset)} not set")
    for name in ("kafka", "mongo"):
        if name not in builtin_plugins() and importlib.util.find_spec(f"plugins.{name}") is None:
            reasons.append(f"no {name} plugin yet")
    env = {"BALANCE_EVENT_STORE": "kafka", "BALANCE_READ_MODEL": "mongo"}
    env |= {name: os.environ[name] for name in os.environ if name.startswith("BALANCE_KAFKA_")}
    env |= {name: os.environ[name] for name in os.environ if name.startswith("BALANCE_MONGO_")}
    return Backend(
        "kafka_mongo",
        "Kafka + Mongo",
        env,
        http_ratio=0.3,
        latency_p99_ms=30.0,
        lag_p99_ms=250.0,
        missing="; ".join(reasons) or None,
    )


def all_backends() -> list[Backend]:
    """Every backend; ``BENCH_BACKENDS=embedded,...`` keeps only those named (the others are
    reported as not measured)."""
    backends = [EMBEDDED, kafka_mongo()]
    wanted = {n.strip() for n in os.environ.get("BENCH_BACKENDS", "").split(",") if n.strip()}
    if not wanted:
        return backends
    return [
        b if b.key in wanted or b.missing else replace(b, missing="left out by BENCH_BACKENDS")
        for b in backends
    ]


def each_backend(
    backends: Sequence[Backend],
    measure: Callable[[Backend], tuple[Row, dict[str, Any]]],
    not_measured: Callable[[Backend, str], Row],
) -> Outcome:
    """``measure`` on every backend that can be measured in this run: a row each, and its
    figures by backend key. One that fails gets a "miss" row that says why; the others stand."""
    rows: list[Row] = []
    figures: dict[str, Any] = {}
    for backend in backends:
        if backend.missing:
            rows.append(not_measured(backend, backend.missing))
            continue
        try:
            row, figures[backend.key] = measure(backend)
        except Exception as error:
            traceback.print_exc()
            figures[backend.key] = {"error": repr(error)}
            row = not_measured(backend, f"the bench failed: {error!r}")
            row.status = "miss"
        rows.append(row)
    return Outcome(rows, figures)
