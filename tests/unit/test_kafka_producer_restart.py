"""After a failed batch the writer starts a new producer even if no append comes (its start ends
what an outage left open on a partition), but never after a newer writer fenced it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from core.errors import StoreUnavailableError
from plugins.kafka.errors import fenced, kafka_unavailable
from plugins.kafka.producer import ProducerLifecycle


class _Lifecycle(ProducerLifecycle):
    """The lifecycle with its producer start recorded instead of made."""

    def __init__(self) -> None:
        self.starts = 0
        self.fail_start = False
        self._producer = None
        self._initialised = False
        self._restart_due = False
        self.fencing = None

    def ready(self, deadline: float | None) -> Any:
        self.starts += 1
        if self.fail_start:
            raise StoreUnavailableError("Kafka is still down")
        self._producer = object()
        self._initialised = True
        return self._producer

    def lose(self) -> None:
        self._producer = None
        self._initialised = False


def _fencing() -> BaseException:
    return kafka_unavailable("commit failed", KafkaException(KafkaError(KafkaError._FENCED)))


def test_a_batch_failure_restarts_the_producer_while_idle_until_it_starts() -> None:
    lifecycle = _Lifecycle()
    lifecycle.failed(kafka_unavailable("the broker went away"))
    lifecycle.fail_start = True
    lifecycle.restart_if_due(deadline=0.0)
    assert lifecycle.starts == 1
    assert not lifecycle.started
    lifecycle.fail_start = False
    lifecycle.restart_if_due(deadline=0.0)
    assert lifecycle.starts == 2
    assert lifecycle.started
    lifecycle.restart_if_due(deadline=0.0)  # started: nothing more to do
    assert lifecycle.starts == 2


def test_nothing_restarts_without_a_failure_or_after_a_fencing() -> None:
    lifecycle = _Lifecycle()
    lifecycle.restart_if_due(deadline=0.0)  # a writer that never appended never fences anyone
    assert lifecycle.starts == 0
    lifecycle.failed(_fencing())
    lifecycle.restart_if_due(deadline=0.0)
    assert lifecycle.starts == 0


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (KafkaError._FENCED, True),
        (KafkaError.PRODUCER_FENCED, True),
        (KafkaError.INVALID_PRODUCER_EPOCH, True),
        (KafkaError._MSG_TIMED_OUT, False),
    ],
)
def test_fenced_reads_the_cause_chain(code: int, expected: bool) -> None:
    assert fenced(kafka_unavailable("wrapped", KafkaException(KafkaError(code)))) is expected


def test_once_fenced_no_producer_is_started_whatever_said_so() -> None:
    """A fencing met anywhere (here: a failed abort) refuses every later start, with the
    fencing as the cause: a new producer's ``init_transactions`` would fence the new owner."""
    built: list[object] = []
    lifecycle = ProducerLifecycle(SimpleNamespace(config=None), stale=lambda: None)  # type: ignore[arg-type]
    lifecycle._build = lambda deadline: built.append(deadline)  # type: ignore[method-assign]
    lifecycle.note(kafka_unavailable("a timeout"))
    assert lifecycle.fencing is None
    lifecycle.note(KafkaException(KafkaError(KafkaError._FENCED)))

    with pytest.raises(StoreUnavailableError) as refused:
        lifecycle.ready(deadline=None)
    assert fenced(refused.value)
    assert built == []
    lifecycle.failed(kafka_unavailable("the next batch failed"))
    lifecycle.restart_if_due(deadline=0.0)
    assert built == []
