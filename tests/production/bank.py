"""A Jepsen-style bank workload against real ``balance serve`` processes, and its checker.

- ``Server``: ``balance serve`` in a subprocess on one data directory (and, on Kafka + Mongo, one
  topic and one database), SIGKILLed and started again by the nemesis.
- ``Bank``: concurrent clients (asyncio + httpx) sending deposits, withdrawals, transfers and
  open/transfer/close races. Every command carries an ``Idempotency-Key``; a command without a
  definitive answer (no answer, a timeout, 503, a concurrent-update 409, a pending transfer) is
  sent again with the same key and the same body until it gets one (2xx, or a domain refusal
  such as insufficient funds), within a generous bound.
- ``Nemesis``: kills and restarts the server, stops or kills the Kafka broker for a while, and
  after each restart sends again some commands that were already answered (a duplicate
  delivery), whose answers must equal the first ones.
- ``check``: reads every event from the store itself (the SQLite file through the EventStore
  port, or the Kafka topic with a plain consumer) and compares it with what the clients were
  told and with what the read model serves: money conserved to the cent, every acknowledged
  command exactly once, no refused command written, no negative balance, transfers whole, and
  the read model (account and statement) equal to the fold of the events.

Nothing here asserts a duration: the nemesis moves on when the clients have made progress, and
time limits are only upper bounds that turn a hang into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

import httpx
import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from core.config import Settings, env_name
from core.eventsourcing.rows import select_records
from core.records import EventRecord, decode_record
from handlers.accounts import events as ev
from handlers.accounts.codec import decode_event
from plugins.jwt.tokens import mint_token
from plugins.sqlite.schema import EVENTS_FILE
from plugins.sqlite.store import SqliteEventStore
from tests.kafka.helpers import read_topic

ROOT: Final = Path(__file__).resolve().parents[2]
CURRENCY: Final = "EUR"
SUBJECT: Final = "bank"

# Upper bounds only: they turn a hang into a failure and never decide a verdict otherwise.
REQUEST_TIMEOUT: Final = 30.0
OP_DEADLINE: Final = 240.0
START_TIMEOUT: Final = 120.0
PROGRESS_TIMEOUT: Final = 180.0

# The load's mix (weights); "race" is an open/transfer/close race (Bank.close_race).
LOAD_MIX: Final = {"deposit": 30, "withdraw": 25, "transfer": 40, "race": 3}

Kind = Literal["open", "deposit", "withdraw", "transfer", "close"]
# Refusals the domain gives for a command that changes nothing: definitive answers.
REFUSALS: Final = frozenset(
    {"insufficient-funds", "account-closed", "non-zero-balance", "currency-mismatch"}
)


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def free_port() -> int:
    """A port nobody listens on: from the range ``TEST_HTTP_PORTS`` ("38100-38199") when set (on
    a shared host each user has a range), else one the OS picks."""
    wanted = os.environ.get("TEST_HTTP_PORTS", "")
    candidates: list[int] = []
    if wanted:
        low, _, high = wanted.partition("-")
        candidates = list(range(int(low), int(high or low) + 1))
        random.shuffle(candidates)
    for port in (*candidates, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise AssertionError("no free port")


def server_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes ``balance serve`` use ``settings``: the caller's BALANCE_*
    variables dropped, the settings' own set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALANCE_")}
    env.update({env_name(key): value for key, value in settings.values.items()})
    env.update(
        BALANCE_EVENT_STORE=settings.event_store,
        BALANCE_READ_MODEL=settings.read_model,
        BALANCE_AUTHENTICATOR=settings.authenticator,
        BALANCE_DATA_DIR=str(settings.data_dir),
        PYTHONPATH=str(ROOT),
    )
    return env


# ---- the server under test ----------------------------------------------------------------


class Server:
    """``balance serve`` on one port and one data directory, started again after each kill."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.kills = 0
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        command = [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)]
        with self.log.open("ab") as log:
            log.write(f"==== start {self.starts + 1}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=server_environment(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as client:
            while True:
                if self._process.poll() is not None:
                    raise AssertionError(f"balance serve exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health/ready")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"balance serve not ready:\n{self.log_tail()}")
                await asyncio.sleep(0.2)

    async def kill(self, when: Callable[[], bool] | None = None) -> None:
        """SIGKILL the server: now, or as soon as ``when()`` is true (polled from a thread
        every millisecond, so that little happens in the server between the two)."""
        process = self._process
        assert process is not None
        assert process.poll() is None, f"the server died by itself:\n{self.log_tail()}"

        def kill() -> None:
            give_up = time.monotonic() + OP_DEADLINE
            while when is not None and not when():
                assert time.monotonic() < give_up, "the kill's condition never came true"
                time.sleep(0.001)
            process.send_signal(signal.SIGKILL)
            process.wait(30)

        await asyncio.to_thread(kill)
        self.kills += 1

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 30)

    def log_tail(self, lines: int = 30) -> str:
        """The log's last lines and its fatal ones, each cut short (tracebacks are long)."""
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        fatal = [line for line in text if any(word in line for word in _FATAL_WORDS)]
        shown = [*fatal[:10], "...", *text[-lines:]]
        return "\n".join(line[:300] for line in shown)


_FATAL_WORDS: Final = ("Fatal", "FATAL", "SystemError", "thread failed", "Exception in thread")


def kafka_control(settings: Settings) -> Callable[[str], Awaitable[None]]:
    """``scripts/servers/kafka <action>`` for the broker these settings name."""
    port = settings.values["kafka_bootstrap"].rsplit(":", 1)[1]

    async def run(action: str) -> None:
        command = [str(ROOT / "scripts/servers/kafka"), action]
        env = {**os.environ, "KAFKA_PORT": port}
        await asyncio.to_thread(
            subprocess.run, command, env=env, check=True, timeout=180, capture_output=True
        )

    return run


# ---- commands, their attempts and their answers -------------------------------------------


@dataclass
class Attempt:
    started: float  # time.time()
    outcome: str  # "201", "422 insufficient-funds", "no answer (ReadError)"...


@dataclass
class Op:
    kind: Kind
    key: str
    method: str
    path: str
    body: dict[str, Any] | None
    amount: int = 0  # cents
    account: str = ""  # deposit, withdraw, close
    source: str = ""  # transfer
    destination: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    status: int | None = None  # the definitive answer's status
    answer: Any = None  # its JSON body (None for 204)
    refusal: str | None = None  # the problem type of a domain refusal
    unexpected: list[str] = field(default_factory=list)  # answers no command should get

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    @property
    def resolved(self) -> bool:
        return self.acknowledged or self.refused

    @property
    def transfer_status(self) -> str | None:
        return self.answer["status"] if self.kind == "transfer" and self.acknowledged else None


def _problem_type(response: httpx.Response) -> str:
    try:
        return str(response.json().get("type", "")).removeprefix("/problems/")
    except ValueError:
        return ""


class Bank:
    """The clients' shared ledger: the accounts, every command sent and what became of it."""

    def __init__(self, server: Server, seed: int, others: Iterable[Server] = ()) -> None:
        self.server = server
        # Several instances of one deployment: client n talks to instance n modulo their count.
        self.servers = [server, *others]
        self.seed = seed
        self.run = uuid.uuid4().hex[:10]
        self.token = mint_token(server.settings, SUBJECT)
        self.accounts: list[str] = []  # the pool the load moves money between
        self.side_accounts: list[str] = []  # opened by open/transfer/close races
        self.ops: list[Op] = []
        self.stop = asyncio.Event()
        self._keys = 0

    # -- building and sending commands --

    def client(self, index: int = 0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.servers[index % len(self.servers)].base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=5.0),
        )

    def _op(self, kind: Kind, method: str, path: str, body: Any, **fields: Any) -> Op:
        self._keys += 1
        op = Op(kind, f"{self.run}-{self._keys}", method, path, body, **fields)
        self.ops.append(op)
        return op

    def open(self, initial: int = 0) -> Op:
        body: dict[str, str] = {"currency": CURRENCY}
        if initial:
            body["initial_deposit"] = money(initial)
        return self._op("open", "POST", "/accounts", body, amount=initial)

    def movement(self, kind: Literal["deposit", "withdraw"], account: str, amount: int) -> Op:
        path = f"/accounts/{account}/{'deposits' if kind == 'deposit' else 'withdrawals'}"
        body = {"amount": money(amount)}
        return self._op(kind, "POST", path, body, amount=amount, account=account)

    def transfer(self, source: str, destination: str, amount: int) -> Op:
        body = {"source": source, "destination": destination, "amount": money(amount)}
        ends = {"source": source, "destination": destination}
        return self._op("transfer", "POST", "/transfers", body, amount=amount, **ends)

    def close(self, account: str) -> Op:
        return self._op("close", "DELETE", f"/accounts/{account}", None, account=account)

    async def send(self, client: httpx.AsyncClient, op: Op) -> httpx.Response:
        headers = {"Idempotency-Key": op.key}
        return await client.request(op.method, op.path, json=op.body, headers=headers)

    async def perform(self, client: httpx.AsyncClient, op: Op, deadline: float = OP_DEADLINE) -> Op:
        """Send ``op`` until it gets a definitive answer, or ``deadline`` seconds pass."""
        give_up = time.monotonic() + deadline
        while time.monotonic() < give_up:
            started = time.time()
            try:
                response = await self.send(client, op)
            except httpx.TransportError as error:
                op.attempts.append(Attempt(started, f"no answer ({type(error).__name__})"))
                await asyncio.sleep(0.25)
                continue
            kind = _problem_type(response) if response.status_code >= 400 else ""
            op.attempts.append(Attempt(started, f"{response.status_code} {kind}".strip()))
            status = response.status_code
            if status == 202:  # a transfer still pending: ask again for its outcome
                await asyncio.sleep(0.2)
            elif 200 <= status < 300:
                op.status, op.answer = status, response.json() if response.content else None
                return op
            elif kind in REFUSALS:
                op.status, op.refusal = status, kind
                return op
            elif status == 503 or kind == "concurrent-update":
                await asyncio.sleep(0.5 if status == 503 else 0.05)
            else:
                op.unexpected.append(f"{status} {response.text[:300]}")
                await asyncio.sleep(0.5)
        return op

    async def open_accounts(self, client: httpx.AsyncClient, count: int, initial: int) -> None:
        ops = [self.open(initial) for _ in range(count)]
        for op in await asyncio.gather(*(self.perform(client, op) for op in ops)):
            assert op.acknowledged, (op.attempts, op.unexpected)
            self.accounts.append(op.answer["id"])

    # -- the load --

    async def client_loop(self, index: int) -> None:
        """One client: random commands on the pool until ``stop``; the one in hand is finished."""
        rng = random.Random(self.seed * 1000 + index)
        async with self.client(index) as client:
            while not self.stop.is_set():
                choice = rng.choices(list(LOAD_MIX), list(LOAD_MIX.values()))[0]
                if choice == "race":
                    await self.close_race(client, rng)
                elif choice == "transfer":
                    source, destination = rng.sample(self.accounts, 2)
                    op = self.transfer(source, destination, rng.randint(1, 12_000))
                    await self.perform(client, op)
                else:
                    account = rng.choice(self.accounts)
                    top = 5_000 if choice == "deposit" else 8_000
                    op = self.movement(choice, account, rng.randint(1, top))  # type: ignore[arg-type]
                    await self.perform(client, op)

    async def close_race(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        """Open an empty account, then transfer into it while closing it: the transfer is
        refused, or completes (and the close is refused), or fails and is refunded."""
        opened = await self.perform(client, self.open())
        if not opened.acknowledged:
            return
        target = opened.answer["id"]
        self.side_accounts.append(target)
        transfer = self.transfer(rng.choice(self.accounts), target, rng.randint(1, 2_000))
        close = self.close(target)
        await asyncio.gather(self.perform(client, transfer), self.perform(client, close))

    def acknowledged(self) -> int:
        return sum(op.acknowledged for op in self.ops)

    async def wait_progress(self, acknowledged: int, seconds: float) -> None:
        """Until ``acknowledged`` more commands are answered and ``seconds`` have passed (the
        latter only spreads the faults; progress is what the nemesis waits for)."""
        target = self.acknowledged() + acknowledged
        not_before = time.monotonic() + seconds
        give_up = time.monotonic() + PROGRESS_TIMEOUT
        while self.acknowledged() < target or time.monotonic() < not_before:
            if time.monotonic() > give_up:
                stuck = [op for op in self.ops if not op.resolved][-5:]
                raise AssertionError(
                    f"no progress: {self.acknowledged()} of {target} commands acknowledged after "
                    f"{PROGRESS_TIMEOUT:.0f} s; last unanswered: "
                    f"{[(op.kind, op.attempts[-3:]) for op in stuck]}\n{self.server.log_tail()}"
                )
            await asyncio.sleep(0.1)


# ---- the nemesis ----------------------------------------------------------------------------


@dataclass
class Resent:
    op: Op
    status: int | None
    answer: Any

    @property
    def same(self) -> bool:
        return (self.status, self.answer) == (self.op.status, self.op.answer)


class Nemesis:
    """Faults one after another, each once the clients have made progress since the last."""

    def __init__(
        self,
        bank: Bank,
        broker: Callable[[str], Awaitable[None]] | None = None,
        progress: int = 40,
        spacing: float = 3.0,
        outage: float = 6.0,
        resend: int = 8,
    ) -> None:
        self.bank = bank
        self.broker = broker
        self.progress = progress
        self.spacing = spacing
        self.outage = outage
        self.resend = resend
        self.outages = 0
        self.resent: list[Resent] = []

    async def run(self, plan: Iterable[str]) -> None:
        """``kill`` SIGKILLs the server and starts it again; ``broker-stop`` / ``broker-kill``
        stops or kills the broker for ``outage`` seconds."""
        for step in plan:
            await self.bank.wait_progress(self.progress, self.spacing)
            if step == "kill":
                await self.kill_and_restart()
            elif step in ("broker-stop", "broker-kill"):
                await self.broker_outage(step.removeprefix("broker-"))
            else:
                raise ValueError(step)
        await self.bank.wait_progress(self.progress, self.spacing)

    async def kill_and_restart(self, when: Callable[[], bool] | None = None) -> None:
        """SIGKILL the server (see ``Server.kill``), start it again, and send again the last
        commands answered before the kill."""
        server = self.bank.server
        answered = [op for op in self.bank.ops if op.acknowledged]
        await server.kill(when)
        await server.start()
        await self.resend_answered(answered[-self.resend :] if self.resend else [])

    async def resend_answered(self, ops: list[Op]) -> None:
        """Send again commands answered before the restart: a duplicate delivery must get the
        first answer again, and write nothing."""
        async with self.bank.client() as client:
            for op in ops:
                for _ in range(100):
                    try:
                        response = await self.bank.send(client, op)
                    except httpx.TransportError:
                        await asyncio.sleep(0.25)
                        continue
                    if response.status_code == 503:
                        await asyncio.sleep(0.5)
                        continue
                    answer = response.json() if response.content else None
                    self.resent.append(Resent(op, response.status_code, answer))
                    break

    async def broker_outage(self, action: str) -> None:
        assert self.broker is not None, "a broker outage needs the Kafka backend"
        try:
            await self.broker(action)
            await asyncio.sleep(self.outage)
        finally:
            await self.broker("start")
        self.outages += 1


# ---- the store, read directly ---------------------------------------------------------------


async def store_records(settings: Settings) -> list[EventRecord]:
    """Every event the store holds: through the SQLite EventStore port, or from the Kafka topic
    with a plain ``read_committed`` consumer (not the product's own reader)."""
    if settings.event_store == "sqlite":
        store = SqliteEventStore(settings.data_dir)
        await store.start()
        try:
            subscription = store.subscribe("bank-check", 0)
            records: list[EventRecord] = []
            while (batch := await subscription.next_batch(0.2)) is not None:
                records.extend(batch.events)
            return records
        finally:
            await store.close()
    assert settings.event_store == "kafka", settings.event_store
    values = settings.values
    messages = await asyncio.to_thread(read_topic, values["kafka_bootstrap"], values["kafka_topic"])
    return _records(messages)


def _records(messages: list[Any]) -> list[EventRecord]:
    return [decode_record(m.value()) for m in messages if m.error() is None and m.value()]


class CommandWitness:
    """Finds the events one command wrote, while the server runs: a read-only connection on
    the SQLite events file, or a plain consumer tailing the topic. Blocking: call it from a
    thread."""

    def __init__(self, settings: Settings) -> None:
        self._path = settings.data_dir / EVENTS_FILE
        self._connection: sqlite3.Connection | None = None
        self._consumer: Consumer | None = None
        if settings.event_store == "kafka":
            topic = settings.values["kafka_topic"]
            self._consumer = Consumer(
                {
                    "bootstrap.servers": settings.values["kafka_bootstrap"],
                    "group.id": f"{topic}-witness",
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 10,
                }
            )
            partitions = self._consumer.list_topics(topic, timeout=30).topics[topic].partitions
            self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self._records: list[EventRecord] = []

    def events_of(self, key: str) -> list[EventRecord]:
        if self._consumer is not None:
            self._records += _records(self._consumer.consume(1000, timeout=0.005))
        else:
            if self._connection is None:
                uri = f"file:{self._path}?mode=ro"
                self._connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            last = self._records[-1].position if self._records else 0
            self._records += select_records(self._connection, "WHERE position > ?", (last,))
        return [record for record in self._records if record.metadata.command_id == key]

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
        if self._connection is not None:
            self._connection.close()


# ---- the checker ----------------------------------------------------------------------------

MovementEvent = (
    ev.MoneyDeposited
    | ev.MoneyWithdrawn
    | ev.TransferDebited
    | ev.TransferCredited
    | ev.TransferRefunded
)
MOVEMENT_KINDS: Final[dict[type[Any], str]] = {
    ev.MoneyDeposited: "deposit",
    ev.MoneyWithdrawn: "withdrawal",
    ev.TransferDebited: "transfer_out",
    ev.TransferCredited: "transfer_in",
    ev.TransferRefunded: "transfer_refund",
}


@dataclass
class Folded:
    """One account as its events say: folded here, independently of the product's own fold."""

    balance: int = 0
    version: int = 0
    status: str = "new"
    movements: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        if len(self.failures) < 200:
            self.failures.append(message)

    def text(self, title: str) -> str:
        lines = [f"== {title}"]
        lines += [f"  {name}: {value}" for name, value in self.figures.items()]
        return "\n".join(lines)


def fold(records: list[EventRecord], report: Report) -> tuple[dict[str, Folded], dict[str, Any]]:
    """The accounts and transfers the events describe; every stream must run 1..n without a gap
    or a repeat, and no balance may go below zero or disagree with the amounts."""
    streams: dict[str, list[EventRecord]] = defaultdict(list)
    ids = Counter(record.event_id for record in records)
    for event_id, count in ids.items():
        if count > 1:
            report.fail(f"event {event_id} stored {count} times")
    for record in records:
        streams[record.stream_id].append(record)
    accounts: dict[str, Folded] = {}
    transfers: dict[str, dict[str, Any]] = {}
    for stream_id, stream in streams.items():
        stream.sort(key=lambda r: r.version)
        versions = [r.version for r in stream]
        if versions != list(range(1, len(stream) + 1)):
            report.fail(f"{stream_id} has versions {versions[:20]}...: a gap or a repeat")
        if stream_id.startswith("transfer-"):
            transfers[stream_id.removeprefix("transfer-")] = _fold_transfer(stream)
        else:
            accounts[stream_id.removeprefix("account-")] = _fold_account(stream_id, stream, report)
    return accounts, transfers


def _fold_account(stream_id: str, stream: list[EventRecord], report: Report) -> Folded:
    account = Folded()
    for record in stream:
        event = decode_event(record)
        account.version = record.version
        if isinstance(event, ev.AccountOpened):
            account.status = "open"
            continue
        if isinstance(event, ev.AccountClosed):
            if account.balance != 0:
                report.fail(f"{stream_id} closed at {money(account.balance)}")
            account.status = "closed"
            continue
        assert isinstance(event, MovementEvent), event
        amount = event.amount
        out = isinstance(event, ev.MoneyWithdrawn | ev.TransferDebited)
        account.balance += -amount if out else amount
        if amount <= 0 or event.balance_after != account.balance or account.balance < 0:
            report.fail(
                f"{stream_id}@{record.version}: {type(event).__name__} of {money(amount)} "
                f"says {money(event.balance_after)}, the fold says {money(account.balance)}"
            )
        account.movements.append(
            {
                "id": record.event_id,
                "kind": MOVEMENT_KINDS[type(event)],
                "amount": money(amount),
                "balance_after": money(event.balance_after),
                "version": record.version,
                "transfer_id": getattr(event, "transfer_id", None),
            }
        )
    return account


def _fold_transfer(stream: list[EventRecord]) -> dict[str, Any]:
    state: dict[str, Any] = {"status": "new", "key": None}
    for record in stream:
        event = decode_event(record)
        if isinstance(event, ev.TransferRequested):
            state.update(
                status="pending",
                key=record.metadata.command_id,
                source=event.source,
                destination=event.destination,
                amount=event.amount,
            )
        elif isinstance(event, ev.TransferCompleted):
            state["status"] = "completed"
        elif isinstance(event, ev.TransferFailed):
            state.update(status="failed", reason=event.reason)
    return state


def check_store(bank: Bank, records: list[EventRecord], report: Report) -> dict[str, Folded]:
    """The events against the clients' ledger; the folded accounts, for the read-model check."""
    accounts, transfers = fold(records, report)
    by_key: dict[str, list[EventRecord]] = defaultdict(list)
    legs: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        event = decode_event(record)
        if isinstance(event, ev.TransferDebited | ev.TransferCredited | ev.TransferRefunded):
            legs[event.transfer_id][type(event).__name__] += 1
            legs[event.transfer_id]["cents:" + type(event).__name__] += event.amount
        elif record.metadata.command_id is not None:
            by_key[record.metadata.command_id].append(record)
        elif not isinstance(event, ev.TransferCompleted | ev.TransferFailed):
            report.fail(f"{record.stream_id}@{record.version}: {record.type} without a command")

    ops = {op.key: op for op in bank.ops}
    for key in by_key.keys() - ops.keys():
        report.fail(f"events under a key no client sent: {key}")
    for transfer_id in legs.keys() - transfers.keys():
        report.fail(f"money moved for transfer {transfer_id}, which was never requested")
    # Each account's balance from the acknowledged commands alone (order does not matter).
    expected: defaultdict[str, int] = defaultdict(int)
    closed: set[str] = set()
    for op in bank.ops:
        written = by_key.get(op.key, [])
        if op.unexpected:
            report.fail(f"{op.kind} {op.key}: unexpected answers {op.unexpected[:3]}")
        if not op.resolved:
            report.fail(f"{op.kind} {op.key}: no definitive answer ({op.attempts[-3:]})")
            continue
        if op.refused:
            if written:
                report.fail(f"refused {op.kind} {op.key} ({op.refusal}) wrote {len(written)}")
            continue
        _check_written(op, written, transfers, report)
        answer = op.answer
        if op.kind == "open":
            expected[answer["id"]] += op.amount
        elif op.kind == "deposit":
            expected[op.account] += op.amount
        elif op.kind == "withdraw":
            expected[op.account] -= op.amount
        elif op.kind == "close":
            closed.add(op.account)
        elif answer["status"] == "completed":
            expected[op.source] += -op.amount
            expected[op.destination] += op.amount

    for transfer_id, state in transfers.items():
        count = legs.get(transfer_id, Counter())
        debits, credits, refunds = (
            count["TransferDebited"],
            count["TransferCredited"],
            count["TransferRefunded"],
        )
        whole = {
            "completed": (debits, credits, refunds) == (1, 1, 0),
            "failed": (debits, credits, refunds) in ((0, 0, 0), (1, 0, 1)),
        }.get(state["status"], False)
        amounts_match = all(
            count["cents:" + name] == state.get("amount", 0) * count[name]
            for name in ("TransferDebited", "TransferCredited", "TransferRefunded")
        )
        if not whole or not amounts_match:
            report.fail(f"transfer {transfer_id} {state['status']}: legs {dict(count)}")

    for account_id in {*bank.accounts, *bank.side_accounts}:
        folded = accounts.get(account_id)
        if folded is None:
            report.fail(f"account {account_id} has no events")
            continue
        if folded.balance != expected[account_id]:
            report.fail(
                f"account {account_id}: the events say {money(folded.balance)}, the "
                f"acknowledged commands {money(expected[account_id])}"
            )
        if (folded.status == "closed") != (account_id in closed):
            report.fail(
                f"account {account_id} is {folded.status}; close acknowledged: "
                f"{account_id in closed}"
            )

    deposited = sum(
        op.amount for op in bank.ops if op.acknowledged and op.kind in ("open", "deposit")
    )
    withdrawn = sum(op.amount for op in bank.ops if op.acknowledged and op.kind == "withdraw")
    held = sum(folded.balance for folded in accounts.values())
    if held != deposited - withdrawn:
        report.fail(
            f"money off: held {money(held)}, deposited - withdrawn {money(deposited - withdrawn)}"
        )
    statuses = Counter(state["status"] for state in transfers.values())
    report.figures.update(
        events_in_store=len(records),
        deposited=money(deposited),
        withdrawn=money(withdrawn),
        held=money(held),
        money_off=money(held - (deposited - withdrawn)),
        transfers_in_store=dict(statuses),
        refunds=sum(c["TransferRefunded"] for c in legs.values()),
    )
    return accounts


def _check_written(
    op: Op, written: list[EventRecord], transfers: dict[str, Any], report: Report
) -> None:
    """An acknowledged command's events: exactly the ones it implies, once, matching its answer."""
    answer = op.answer
    types = [record.type for record in written]
    if op.kind in ("deposit", "withdraw"):
        want = "MoneyDeposited" if op.kind == "deposit" else "MoneyWithdrawn"
        if types != [want]:
            report.fail(f"{op.kind} {op.key} acknowledged; its events: {types}")
            return
        record, event = written[0], decode_event(written[0])
        assert isinstance(event, ev.MoneyDeposited | ev.MoneyWithdrawn)
        told = (answer["id"], answer["version"], answer["amount"], answer["balance_after"])
        stored = (record.event_id, record.version, money(event.amount), money(event.balance_after))
        if told != stored or (record.stream_id, event.amount) != (
            f"account-{op.account}",
            op.amount,
        ):
            report.fail(f"{op.kind} {op.key}: answered {told}, stored {stored}")
    elif op.kind == "open":
        want_types = ["AccountOpened"] + (["MoneyDeposited"] if op.amount else [])
        streams = {record.stream_id for record in written}
        if types != want_types or streams != {f"account-{answer['id']}"}:
            report.fail(f"open {op.key} acknowledged; its events: {types} on {streams}")
    elif op.kind == "close":
        if types != ["AccountClosed"] or written[0].stream_id != f"account-{op.account}":
            report.fail(f"close {op.key} acknowledged; its events: {types}")
    else:
        state = transfers.get(answer["id"])
        if types != ["TransferRequested"] or state is None:
            report.fail(f"transfer {op.key} acknowledged; its events: {types}")
        elif (state["status"], state["key"]) != (answer["status"], op.key) or (
            state["source"],
            state["destination"],
            state["amount"],
        ) != (op.source, op.destination, op.amount):
            report.fail(f"transfer {op.key}: answered {answer}, stored {state}")


async def check_read_model(bank: Bank, accounts: dict[str, Folded], report: Report) -> None:
    """GET /accounts/{id} and the whole statement of every account equal the fold."""
    async with bank.client() as client:
        for account_id in [*bank.accounts, *bank.side_accounts]:
            folded = accounts.get(account_id)
            if folded is None:
                continue
            view: dict[str, Any] = {}
            for _ in range(30):  # each read waits up to 2 s for the projection itself
                response = await client.get(
                    f"/accounts/{account_id}", params={"min_version": folded.version}
                )
                view = response.json()
                if view.get("version", 0) >= folded.version:
                    break
            seen = (view.get("balance"), view.get("version"), view.get("status"))
            if seen != (money(folded.balance), folded.version, folded.status):
                report.fail(
                    f"account {account_id}: read model {seen}, events "
                    f"{(money(folded.balance), folded.version, folded.status)}"
                )
            statement = await _statement(client, account_id, folded.version)
            if statement != folded.movements:
                pairs = zip(statement, folded.movements, strict=False)
                first = next((pair for pair in pairs if pair[0] != pair[1]), None)
                report.fail(
                    f"statement of {account_id}: {len(statement)} lines, "
                    f"{len(folded.movements)} movements in the events; first difference {first}"
                )


async def _statement(
    client: httpx.AsyncClient, account_id: str, version: int
) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200, "min_version": version}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(f"/accounts/{account_id}/transactions", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        keys = ("id", "kind", "amount", "balance_after", "version", "transfer_id")
        lines += [{k: item.get(k) for k in keys} for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return lines


def ledger_figures(bank: Bank, nemesis: Nemesis | None, clients: int) -> dict[str, Any]:
    ops = bank.ops
    attempts = [attempt for op in ops for attempt in op.attempts]
    outcomes = Counter(attempt.outcome.split(" (")[0] for attempt in attempts)
    # An acknowledged command whose answer is older than the attempt that received it: its
    # first run was written, its answer lost, and the retry replayed it.
    replayed = sum(1 for op in ops if op.acknowledged and _written_before_last_attempt(op))
    figures: dict[str, Any] = {
        "clients": clients,
        "accounts": f"{len(bank.accounts)} + {len(bank.side_accounts)} opened by close races",
        "commands": len(ops),
        "acknowledged": sum(op.acknowledged for op in ops),
        "acknowledged_by_kind": dict(Counter(op.kind for op in ops if op.acknowledged)),
        "refused": dict(Counter(op.refusal for op in ops if op.refused)),
        "transfers_answered": dict(Counter(op.transfer_status for op in ops if op.transfer_status)),
        "attempts": len(attempts),
        "retries": len(attempts) - len(ops),
        "retried_commands": sum(len(op.attempts) > 1 for op in ops),
        "attempt_outcomes": dict(outcomes.most_common()),
        "replayed_after_a_lost_answer": replayed,
        "kills": bank.server.kills,
        "server_starts": bank.server.starts,
    }
    if nemesis is not None:
        figures["broker_outages"] = nemesis.outages
        figures["resent_after_restart"] = len(nemesis.resent)
        figures["resent_same_answer"] = sum(r.same for r in nemesis.resent)
    return figures


def _written_before_last_attempt(op: Op) -> bool:
    stamp = op.answer and (
        op.answer.get("occurred_at") or op.answer.get("requested_at") or op.answer.get("opened_at")
    )
    if not stamp or len(op.attempts) < 2:
        return False
    written = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return written < op.attempts[-1].started


def check_resent(nemesis: Nemesis, report: Report) -> None:
    for resent in nemesis.resent:
        if not resent.same:
            report.fail(
                f"{resent.op.kind} {resent.op.key} sent again: {resent.status} {resent.answer}, "
                f"first answer {resent.op.status} {resent.op.answer}"
            )


# ---- a command whose answer the client does not wait for ------------------------------------


@dataclass
class Unanswered:
    """A command whose first run was written and whose server was then SIGKILLed, its answer
    unread. ``original`` is that answer when the dead server had sent all of it (read only after
    the retry); None when it had not, or when the client had hung up at once."""

    op: Op
    hung_up: bool
    written: list[EventRecord]
    original: tuple[int, Any] | None


async def unanswered_round(
    bank: Bank, nemesis: Nemesis, witness: CommandWitness, op: Op, hang_up: bool
) -> Unanswered:
    """Send ``op`` on a connection of its own (closed at once with ``hang_up``), SIGKILL the
    server as soon as the store holds the command's events, start it again, and retry ``op``
    with the same key until it is answered."""
    reader, writer = await _send_raw(bank, op)
    if hang_up:
        writer.close()
    written: list[EventRecord] = []

    def stored() -> bool:
        written[:] = witness.events_of(op.key)
        return bool(written)

    await nemesis.kill_and_restart(when=stored)
    original = None if hang_up else await _read_late_answer(reader, writer)
    async with bank.client() as client:
        await bank.perform(client, op)
    return Unanswered(op, hang_up, written, original)


async def _send_raw(bank: Bank, op: Op) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Send ``op`` as HTTP/1.1 on a connection of its own, without reading the answer."""
    body = msgspec.json.encode(op.body) if op.body is not None else b""
    head = (
        f"{op.method} {op.path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{bank.server.port}\r\n"
        f"Authorization: Bearer {bank.token}\r\n"
        f"Idempotency-Key: {op.key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", bank.server.port)
    op.attempts.append(Attempt(time.time(), "no answer (not read before the kill)"))
    writer.write(head.encode() + body)
    await writer.drain()
    return reader, writer


async def _read_late_answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[int, Any] | None:
    """The whole answer the dead server had sent on this connection, or None."""
    try:
        data = await asyncio.wait_for(reader.read(), 10)
    except (ConnectionError, TimeoutError):
        data = b""
    finally:
        writer.close()
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    if len(body) < int(headers.get("content-length", len(body))):
        return None
    return int(lines[0].split()[1]), msgspec.json.decode(body) if body else None
