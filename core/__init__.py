"""The framework: mediator, plugin manager, container, configuration, event-sourcing primitives.

Everything a plugin or the domain needs is importable from here; the modules behind it are
small and each has one job.
"""

from core.config import ConfigError, MissingSettingError, Settings, load_settings
from core.container import Container
from core.errors import (
    BalanceError,
    ConcurrencyError,
    DuplicateHandlerError,
    HandlerNotFoundError,
    NotificationError,
    StoreUnavailableError,
)
from core.hookspecs import hookimpl, hookspec
from core.locks import KeyedLocks
from core.mediator import Mediator, Publisher, Sender
from core.mediator_builder import MediatorBuilder
from core.messages import Notification, Request, StreamRequest
from core.pipeline import (
    Handled,
    NotificationHandler,
    PipelineBehavior,
    RequestExceptionAction,
    RequestExceptionHandler,
    RequestHandler,
    RequestPostProcessor,
    RequestPreProcessor,
    StreamPipelineBehavior,
    StreamRequestHandler,
)
from core.plugins import ENTRY_POINT_GROUP, collect, make_plugin_manager
from core.ports import (
    Authenticator,
    EventBatch,
    EventStore,
    EventSubscription,
    Lifecycle,
    Principal,
    SnapshotStore,
)
from core.publishing import ConcurrentPublisher, PublishStrategy, SequentialPublisher
from core.records import EventMetadata, EventRecord, Snapshot
from core.registry import BackendOffer, Registry
from core.repository import AggregateKind, Repository

__all__ = [
    "AggregateKind",
    "Authenticator",
    "BackendOffer",
    "BalanceError",
    "ConcurrencyError",
    "ConcurrentPublisher",
    "ConfigError",
    "Container",
    "DuplicateHandlerError",
    "ENTRY_POINT_GROUP",
    "EventBatch",
    "EventMetadata",
    "EventRecord",
    "EventStore",
    "EventSubscription",
    "Handled",
    "HandlerNotFoundError",
    "KeyedLocks",
    "Lifecycle",
    "Mediator",
    "MediatorBuilder",
    "MissingSettingError",
    "Notification",
    "NotificationError",
    "NotificationHandler",
    "PipelineBehavior",
    "Principal",
    "PublishStrategy",
    "Publisher",
    "Registry",
    "Repository",
    "Request",
    "RequestExceptionAction",
    "RequestExceptionHandler",
    "RequestHandler",
    "RequestPostProcessor",
    "RequestPreProcessor",
    "Sender",
    "SequentialPublisher",
    "Settings",
    "Snapshot",
    "SnapshotStore",
    "StoreUnavailableError",
    "StreamPipelineBehavior",
    "StreamRequest",
    "StreamRequestHandler",
    "collect",
    "hookimpl",
    "hookspec",
    "load_settings",
    "make_plugin_manager",
]
