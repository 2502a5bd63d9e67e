"""11. Take-over time: three ``balance serve`` instances of one deployment on a topic of 6
partitions, under a light steady load; the owner of a chosen partition is SIGKILLed, and the
time from the kill to the first acknowledged deposit on a stream of that partition, sent through
a surviving instance, is measured.

``cluster_accounts`` accounts are opened in-process on the topic, then the instances start and
settle (every partition owned exactly once). ``load_clients`` clients each send a deposit on a
random account to a random running instance, then pause ``load_pause_s``: the light load. For
kill k (``kills`` in all, 6: one per partition), partition k mod 6 is chosen; its owner (from the
instances' ``/health/ready``) is SIGKILLed, and at once a probe sends one deposit, with an
``Idempotency-Key``, on an account of that partition to a survivor, again with the same key
10 ms after each answer that is not a 2xx, until one is. Until the group's session timeout
expires no instance may write the partition: the broker still counts the dead member as its
owner. Then a survivor is assigned it, fences the dead owner's producer, reads the partition's
tail and announces itself in the owner directory; the probe's next attempt is written there
(directly, or forwarded by the survivor it was sent to). Between kills the killed instance starts
again (same data directory and port) and the run waits until ownership has settled.

Reported: the p50 and the maximum over the kills, and the group's session timeout and
heartbeat interval, read from the broker (``group.consumer.session.timeout.ms``,
``group.consumer.heartbeat.interval.ms``); the test broker sets 6 s and 0.5 s, Kafka's
defaults are 45 s and 5 s (docs/kafka.md, "Timing").
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from bench.backends import Backend, kafka_mongo
from bench.cluster import Instance, cluster, ownership, settled
from bench.common import Outcome, Row, Sizes, run_async
from bench.http import accounts_files
from bench.scaling import ScaleSizes, not_measured, on_partitions, scale_sizes
from bench.vegeta import percentile
from handlers.accounts.account import account_stream
from plugins.kafka.partitioner import partition_for

__all__ = ["group_timeouts", "run"]

LABEL: Final = "11. take-over after SIGKILL, 3 instances, 6 partitions"
BODY: Final = {"amount": "1.00"}
RETRY_S: Final = 0.01
PROBE_BOUND: Final = 300.0  # an upper bound on one probe: it turns a hang into a failure
Account = tuple[str, str]  # id, token


def group_timeouts(bootstrap: str) -> dict[str, int]:
    """The broker's session timeout and heartbeat interval of KIP-848 consumer groups (ms)."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap})
    broker = min(admin.list_topics(timeout=10).brokers)
    resource = ConfigResource(ResourceType.BROKER, str(broker))
    configs = admin.describe_configs([resource])[resource].result(10)
    names = ("group.consumer.session.timeout.ms", "group.consumer.heartbeat.interval.ms")
    return {name: int(configs[name].value) for name in names}


@dataclass
class _Load:
    """The light steady load: answers by status while it runs."""

    accounts: list[Account]
    instances: list[Instance]
    pause: float
    answers: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(timeout=10.0) as client:
            while not self.stop.is_set():
                running = [instance for instance in self.instances if instance.ready]
                account, token = rng.choice(self.accounts)
                try:
                    response = await client.post(
                        f"{rng.choice(running).url}/accounts/{account}/deposits",
                        json=BODY,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    self.answers[str(response.status_code)] += 1
                except httpx.TransportError as error:
                    self.answers[type(error).__name__] += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.pause)


async def _probe(entry: Instance, account: Account, killed_at: float) -> dict[str, Any]:
    """One deposit on ``account`` through ``entry``, sent again until it is acknowledged."""
    account_id, token = account
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
    answers: Counter[str] = Counter()
    async with httpx.AsyncClient(base_url=entry.url, timeout=10.0) as client:
        while time.perf_counter() - killed_at < PROBE_BOUND:
            try:
                response = await client.post(
                    f"/accounts/{account_id}/deposits", json=BODY, headers=headers
                )
                answers[str(response.status_code)] += 1
                if response.is_success:
                    acked = time.perf_counter() - killed_at
                    return {"seconds": acked, "attempts": sum(answers.values()), **answers}
            except httpx.TransportError as error:
                answers[type(error).__name__] += 1
            await asyncio.sleep(RETRY_S)
    raise RuntimeError(f"no deposit acknowledged within {PROBE_BOUND:.0f} s: {answers}")


async def _owner(instances: list[Instance], partition: int) -> Instance:
    async with httpx.AsyncClient(timeout=5.0) as client:
        for instance in instances:
            if partition in await ownership(instance, client):
                return instance
    raise RuntimeError(f"nobody owns partition {partition}")


async def _kills(
    backend: Backend, root: Path, accounts: list[Account], scale: ScaleSizes
) -> tuple[list[dict[str, Any]], Counter[str]]:
    partitions = scale.cluster_partitions
    by_partition: dict[int, list[Account]] = {p: [] for p in range(partitions)}
    for account in accounts:
        by_partition[partition_for(account_stream(account[0]), partitions)].append(account)
    kills: list[dict[str, Any]] = []
    async with cluster(backend, root, 3, partitions) as instances:
        await asyncio.gather(*(instance.start() for instance in instances))
        await settled(instances, partitions)
        load = _Load(accounts, instances, scale.load_pause_s)
        clients = [asyncio.create_task(load.client(n)) for n in range(scale.load_clients)]
        try:
            await asyncio.sleep(2.0)  # the load runs steadily before the first kill
            for number in range(scale.kills):
                partition = number % partitions
                victim = await _owner(instances, partition)
                survivors = [instance for instance in instances if instance is not victim]
                entry = survivors[number % len(survivors)]
                account = by_partition[partition][number % len(by_partition[partition])]
                killed_at = victim.kill()
                probe = await _probe(entry, account, killed_at)
                await settled(instances, partitions)
                heir = await _owner(instances, partition)
                probe |= {"partition": partition, "killed": victim.name, "entry": entry.name}
                probe |= {"new_owner": heir.name, "via": "direct" if heir is entry else "forward"}
                kills.append(probe)
                await victim.start()
                await settled(instances, partitions)
                await asyncio.sleep(1.0)
        finally:
            load.stop.set()
            await asyncio.gather(*clients)
    return kills, load.answers


def run(sizes: Sizes, backend: Backend | None = None) -> Outcome:
    backend = backend or kafka_mongo()
    scale = scale_sizes(sizes.quick)
    if backend.missing:
        return Outcome([not_measured(LABEL, "report", backend.missing)], {})
    timeouts = group_timeouts(backend.env["BALANCE_KAFKA_BOOTSTRAP"])
    own = on_partitions(backend, scale.cluster_partitions).own_names("bench.takeover")
    with tempfile.TemporaryDirectory(prefix="bench-takeover-") as tmp:
        root = Path(tmp)
        with accounts_files([own], root, scale.cluster_accounts) as files:
            lines = files[own.key].read_text().splitlines()
            accounts = [(a, t) for a, _, t in (line.partition(" ") for line in lines) if a]
            kills, answers = run_async(_kills(own, root / "cluster", accounts, scale))
    seconds = sorted(kill["seconds"] for kill in kills)
    session = timeouts["group.consumer.session.timeout.ms"] / 1000
    heartbeat = timeouts["group.consumer.heartbeat.interval.ms"] / 1000
    figures: dict[str, Any] = {
        "p50_s": percentile(seconds, 50),
        "max_s": seconds[-1],
        "kills": kills,
        "session_timeout_s": session,
        "heartbeat_interval_s": heartbeat,
        "load_answers": dict(answers),
    }
    row = Row(
        LABEL,
        f"session timeout {session:g} s",
        f"p50 {figures['p50_s']:.2f} s, max {figures['max_s']:.2f} s",
        f"{figures['p50_s'] / session:.2f}x" if session else "",
        "report",
        "info",
        f"{len(kills)} kills, kill → first acknowledged deposit on the partition through a "
        f"survivor: {' / '.join(f'{s:.2f}' for s in (k['seconds'] for k in kills))} s; "
        f"heartbeat {heartbeat:g} s; light load answers {_answers_text(answers)}",
    )
    return Outcome([row], figures)


def _answers_text(answers: Counter[str]) -> str:
    return ", ".join(f"{status}: {count:,}" for status, count in sorted(answers.items()))
