"""The error a caller of the Kafka store gets, and the helpers every writer module shares to
read a confluent-kafka failure and to time one Kafka call."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException

from core.errors import StoreUnavailableError

__all__ = ["fenced", "kafka_error", "kafka_unavailable", "remaining"]


def kafka_unavailable(message: str, error: BaseException | None = None) -> StoreUnavailableError:
    """The error for a caller. The cause keeps no traceback: its frames would hold a dropped
    producer (and its librdkafka threads) for as long as the answer lives."""
    failure = StoreUnavailableError(f"{message}: {error}" if error is not None else message)
    failure.__cause__ = error
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        cause.__traceback__ = None
        cause = cause.__cause__ or cause.__context__
    return failure


def kafka_error(error: BaseException) -> KafkaError | None:
    """The ``KafkaError`` a ``KafkaException`` carries; None for any other exception."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0]
    return None


def remaining(deadline: float | None) -> float:
    """A timeout for one Kafka call: what is left of ``deadline`` (30 s without one)."""
    return 30.0 if deadline is None else max(deadline - time.monotonic(), 0.1)


_FENCED_CODES = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)


def fenced(error: object) -> bool:
    """Whether ``error``, or an error it was raised from, says a newer producer with our
    ``transactional.id`` has fenced this one (anything but an exception: no)."""
    seen: set[int] = set()
    cause = error if isinstance(error, BaseException) else None
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        failure = kafka_error(cause)
        if failure is not None and failure.code() in _FENCED_CODES:
            return True
        cause = cause.__cause__ or cause.__context__
    return False
