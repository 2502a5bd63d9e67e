"""The accounts plugin: the whole slice as the host sees it. Its port (the read model), its
services, the table of what handles what, its start-up work, and its HTTP routes, problem types
and OpenAPI tags, each through a hook (``core.hookspecs``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from litestar.openapi.spec import Tag

from core.auth import PeerCredentials
from core.config import DEFAULT_FORWARD_TIMEOUT, Setting, Settings
from core.container import Container
from core.hookspecs import hookimpl
from core.http.peers import HttpPeerChannel
from core.peers import PeerChannel
from core.ports import EventStore, SnapshotStore
from core.registry import PortSpec, ProblemType, Registry, Startup
from core.registry import Projector as ProjectorPort
from core.routing import RouteToWriter
from handlers.accounts import messages as msg
from handlers.accounts.account_handlers import (
    CloseAccountHandler,
    DepositHandler,
    OpenAccountHandler,
    WithdrawHandler,
)
from handlers.accounts.account_writer import AccountWriter
from handlers.accounts.behaviors import (
    LogRequests,
    LogStreams,
    RequireScope,
    RequireStreamScope,
    RetryOnConflict,
)
from handlers.accounts.clock import Clock
from handlers.accounts.feed import FeedLimits, FeedWakeups, WakeFeeds, WatchAccountHandler
from handlers.accounts.lifecycle import AccountsStartup
from handlers.accounts.notifications import EventsProjected
from handlers.accounts.progress import ProjectionProgress
from handlers.accounts.projector import Projector
from handlers.accounts.query_handlers import (
    GetAccountHandler,
    GetBalanceAtHandler,
    GetStatementHandler,
    GetTransferHandler,
    ListAccountsHandler,
)
from handlers.accounts.readmodel import AccountReadModel
from handlers.accounts.replays import Replays
from handlers.accounts.repositories import Accounts, Transfers
from handlers.accounts.resumer import LeftPending, TransferResumer
from handlers.accounts.step_router import StepRouter
from handlers.accounts.step_runner import RunTransferStep, RunTransferStepHandler, StepRunner
from handlers.accounts.transfer_process import (
    ResumeTransfersHandler,
    TransferHandler,
    TransferSteps,
)
from handlers.accounts.web.accounts import AccountController
from handlers.accounts.web.feeds import FeedController
from handlers.accounts.web.problems import PROBLEM_TYPES
from handlers.accounts.web.schemas import OPENAPI_PLUGINS
from handlers.accounts.web.steps import TransferStepController
from handlers.accounts.web.transfers import TransferController

# What handles what: every command and query of the slice (``messages.py``), and its handler.
HANDLERS: Final[dict[type[Any], type[Any]]] = {
    msg.OpenAccount: OpenAccountHandler,
    msg.Deposit: DepositHandler,
    msg.Withdraw: WithdrawHandler,
    msg.Transfer: TransferHandler,
    msg.CloseAccount: CloseAccountHandler,
    msg.ResumeTransfers: ResumeTransfersHandler,
    RunTransferStep: RunTransferStepHandler,
    msg.GetAccount: GetAccountHandler,
    msg.ListAccounts: ListAccountsHandler,
    msg.GetStatement: GetStatementHandler,
    msg.GetBalanceAt: GetBalanceAtHandler,
    msg.GetTransfer: GetTransferHandler,
}


# The read model the projection writes and the queries read: ``BALANCE_READ_MODEL`` selects
# its backend (``plugins/sqlite``, ``plugins/mongo``, ``plugins/memory``).
READ_MODEL: Final = PortSpec("read_model", (AccountReadModel,), "sqlite")

SETTINGS: Final = (
    Setting(
        "snapshot_every",
        "save an account snapshot every N events (when the store keeps snapshots)",
        "100",
    ),
    Setting("cache_size", "account states kept in memory", "10000"),
    Setting(
        "read_wait_seconds",
        "how long a query with `min_version` waits for the projection",
        "2.0",
    ),
    Setting(
        "feeds_per_caller",
        "live account feeds (`GET /accounts/{id}/events`) one caller may have open at once",
        "10",
    ),
    Setting(
        "command_retries",
        "attempts for a command that lost a concurrency race (commands with an expected "
        "version are never retried)",
        "5",
    ),
)


@hookimpl
def balance_ports() -> tuple[PortSpec, ...]:
    return (READ_MODEL,)


@hookimpl
def balance_settings() -> tuple[Setting, ...]:
    return SETTINGS


@hookimpl
def balance_services(container: Container, settings: Settings) -> None:
    # Read now, so that a bad value stops the start-up (and `balance config`), not a request.
    snapshot_every = settings.get_int("snapshot_every", 100)
    cache_size = settings.get_int("cache_size", 10_000)
    read_wait = settings.get_float("read_wait_seconds", 2.0)
    feeds_per_caller = settings.get_int("feeds_per_caller", 10)

    def accounts() -> Accounts:
        store = container.resolve(EventStore)
        return Accounts(
            store,
            store if isinstance(store, SnapshotStore) else None,
            snapshot_every=snapshot_every,
            cache_size=cache_size,
        )

    def transfers() -> Transfers:
        store = container.resolve(EventStore)
        return Transfers(store, store if isinstance(store, SnapshotStore) else None)

    def progress() -> ProjectionProgress:
        return ProjectionProgress(max_wait=read_wait)

    container.register_singleton(Clock, Clock)
    container.register_singleton(Accounts, accounts)
    container.register_singleton(Transfers, transfers)
    container.register_singleton(AccountWriter, AccountWriter)
    container.register_singleton(Replays, Replays)
    container.register_singleton(StepRunner, StepRunner)
    container.register_singleton(StepRouter, StepRouter)
    container.register_singleton(TransferSteps, TransferSteps)
    container.register_instance(LeftPending, LeftPending())
    container.register_singleton(TransferResumer, TransferResumer)
    if not container.has(PeerChannel):
        # Steps of transfers to the instances that write their accounts, signed with the
        # deployment's credentials when it has some (else such a step is refused at once).
        peer_timeout = settings.get_float("forward_timeout", DEFAULT_FORWARD_TIMEOUT)

        def peers() -> PeerChannel:
            shared = container.resolve(PeerCredentials) if container.has(PeerCredentials) else None
            return HttpPeerChannel(shared, peer_timeout)

        container.register_singleton(PeerChannel, peers)
    container.register_singleton(ProjectionProgress, progress)
    container.register_singleton(Projector, Projector)
    container.register_instance(FeedWakeups, FeedWakeups())
    container.register_instance(FeedLimits, FeedLimits(feeds_per_caller))
    container.register_singleton(ProjectorPort, lambda: container.resolve(Projector))
    container.register_instance(
        RetryOnConflict, RetryOnConflict(settings.get_int("command_retries", 5))
    )


@hookimpl
def balance_register(registry: Registry) -> None:
    registry.behavior(LogRequests)
    registry.pre_processor(RequireScope)
    # Before anything is decided: a command whose account another instance writes goes there.
    registry.behavior(RouteToWriter, request_type=msg.Command)
    registry.behavior(RetryOnConflict, request_type=msg.Command)
    for request_type, handler in HANDLERS.items():
        registry.handler(request_type, handler)
    registry.stream_behavior(LogStreams)
    registry.stream_behavior(RequireStreamScope)
    registry.stream_handler(msg.WatchAccount, WatchAccountHandler)
    registry.notification_handler(EventsProjected, WakeFeeds)


@hookimpl
def balance_lifecycle(container: Container) -> tuple[Startup, ...]:
    return (container.build(AccountsStartup),)


@hookimpl
def balance_routes() -> tuple[object, ...]:
    return (AccountController, FeedController, TransferController, TransferStepController)


@hookimpl
def balance_problem_types() -> Mapping[type[BaseException], ProblemType]:
    return PROBLEM_TYPES


@hookimpl
def balance_openapi() -> Sequence[object]:
    return (
        Tag(name="accounts", description="Accounts, movements, statements"),
        Tag(name="transfers", description="Transfers between accounts"),
        *OPENAPI_PLUGINS,
    )
