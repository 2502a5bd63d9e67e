"""A partition writer's transactional producer (``transactional.id = <prefix>-p<partition>``)
and its lifecycle: build it, initialise its transactions (which fences
an older writer and ends what a broker restart left open), abort a transaction, and drop and
rebuild a producer after a fatal or unknown error.

Whatever a dropped producer left open on the broker is aborted by the next producer's
``init_transactions`` (fencing). Each drop, and each new producer's start, calls ``stale``: the
writer then re-reads the topic's tail before its next version check."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from confluent_kafka import Producer

from plugins.kafka.delivery import ProducerErrors
from plugins.kafka.errors import fenced, kafka_error, kafka_unavailable, remaining
from plugins.kafka.hanging import finish_hanging
from plugins.kafka.topic import KafkaTopic

__all__ = ["ProducerLifecycle"]

log = logging.getLogger(__name__)

_ABORT_TIMEOUT: Final = 1.0
_RETRY_PAUSE: Final = 0.5  # between a producer that failed to start and the next one


class ProducerLifecycle:
    """A partition writer's transactional producer (every call blocks, on the writer's thread)."""

    def __init__(
        self,
        topic: KafkaTopic,
        stale: Callable[[], None],
        partition: int = 0,
    ) -> None:
        self._topic = topic
        self._config = topic.config
        self._partition = partition
        self._stale = stale
        self._producer: Producer | None = None
        self._errors = ProducerErrors()
        self._initialised = False  # init_transactions has succeeded on self._producer
        self._retry_at = 0.0  # no new producer before (time.monotonic()), after a failed one
        self._restart_due = False  # a batch failed, and no producer has started since
        # What told a producer of this partition that a newer writer has fenced it. From then
        # on no producer is started here: its ``init_transactions`` would fence that writer.
        self.fencing: BaseException | None = None

    def _settings(self) -> dict[str, Any]:
        config = self._config
        timeout_ms = int(config.append_timeout * 1000)
        return {
            "bootstrap.servers": config.bootstrap,
            "transactional.id": config.transactional_id(self._partition),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
            # Records go to the writer's partition explicitly (partitioner.py computes the Java
            # clients' choice); this only covers a record produced without one.
            "partitioner": "murmur2_random",
            "message.timeout.ms": timeout_ms,
            "transaction.timeout.ms": max(2 * timeout_ms, 10_000),
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
        }

    @property
    def started(self) -> bool:
        """A producer exists and its transactions are initialised."""
        return self._producer is not None and self._initialised

    def ready(self, deadline: float | None) -> Producer:
        """A producer with initialised transactions: this one, unless it is in trouble."""
        self._refuse_if_fenced()
        if self._producer is not None:
            reason = None
            try:
                self._producer.poll(0)  # serves the error callback (and raises a fatal error)
            except Exception as error:
                self.note(error)
                self._refuse_if_fenced()
                reason = f"an error ({error})"
            if reason is None and self._errors.brokers_lost:
                reason = "the broker went away"
            if reason is not None:
                log.warning("replacing the Kafka producer after %s", reason)
                self.lose()
        if self._producer is None:
            self._build(deadline)
        if not self._initialised:
            self._start(deadline)
        producer = self._producer
        assert producer is not None
        return producer

    def note(self, error: BaseException | None) -> None:
        """Keep ``error`` if it says a newer writer fenced this one."""
        if self.fencing is None and error is not None and fenced(error):
            self.fencing = error

    def _refuse_if_fenced(self) -> None:
        if self.fencing is not None:
            self.lose()
            raise kafka_unavailable("a newer writer fenced this partition's producer", self.fencing)

    def _build(self, deadline: float | None) -> None:
        """After a producer failed to start, the next one waits a moment: a broker that is
        starting up refuses at once, and a new producer per batch would pile up threads."""
        pause = self._retry_at - time.monotonic()
        if pause > 0:
            if deadline is not None and time.monotonic() + pause >= deadline:
                raise kafka_unavailable("Kafka is unavailable; a new producer is tried soon")
            time.sleep(pause)
        errors = ProducerErrors()
        try:
            self._producer = Producer({**self._settings(), "error_cb": errors})
        except Exception as error:
            self._retry_at = time.monotonic() + _RETRY_PAUSE
            raise kafka_unavailable("cannot create the Kafka producer", error) from error
        self._errors = errors
        self._initialised = False

    def _start(self, deadline: float | None) -> None:
        """``init_transactions`` (fences an older writer, settles what it left open), then
        end a transaction a partition still holds open. (No local names the producer: a
        traceback kept by an answer would keep it alive.)"""
        assert self._producer is not None
        try:
            self._producer.init_transactions(remaining(deadline))
        except Exception as error:
            self.note(error)
            failure = kafka_error(error)
            if failure is None or not failure.retriable():
                # Otherwise the same producer tries again with the next batch.
                self.lose()
                self._retry_at = time.monotonic() + _RETRY_PAUSE
            raise kafka_unavailable("Kafka did not initialise the transactions", error) from error
        self._initialised = True
        self._stale()
        try:
            finish_hanging(self._producer, self._topic, deadline, [self._partition])
        except Exception as error:
            self.note(error)
            self.lose()
            self._retry_at = time.monotonic() + _RETRY_PAUSE
            raise kafka_unavailable("cannot end a transaction left open", error) from error

    def abort(self, producer: Producer, error: BaseException | None) -> None:
        """Abort the open transaction, or drop the producer when it cannot be trusted to: a
        fatal error, an exception that did not come from Kafka (``SystemError`` out of
        ``flush``, ...), or a failed abort. A fencing met on the way is kept (``fencing``)."""
        self.note(error)
        failure = None if error is None else kafka_error(error)
        if error is not None and (failure is None or failure.fatal()):
            self.lose()
            return
        try:
            producer.abort_transaction(_ABORT_TIMEOUT)
        except Exception as abort_failure:
            self.note(abort_failure)
            log.warning(
                "Kafka transaction abort failed (%s); recreating the producer", abort_failure
            )
            self.lose()

    def failed(self, error: BaseException) -> None:
        """A batch failed: drop the producer, and start the next one even if no append comes
        (``restart_if_due``), unless a newer writer fenced this one (then the partition is no
        longer ours: the writer stops, and only a new assignment starts a producer for it)."""
        self.note(error)
        self._restart_due = self.fencing is None
        self.lose()

    def restart_if_due(self, deadline: float) -> None:
        """Start a producer lost to a failed batch: its start ends any transaction an outage
        left open on a partition (hanging.py), which would otherwise hold back every
        read_committed reader (the projections) until the next append. Never after a fencing:
        a newer writer owns the topic, and starting again would fence it in turn."""
        if not self._restart_due or self.started or self.fencing is not None:
            return
        try:
            self.ready(deadline)
        except Exception as error:
            log.info("the Kafka producer is not back yet: %s", error)
        else:
            self._restart_due = False

    def lose(self) -> None:
        """Drop the producer (its transaction state is unknown or broken)."""
        if self._producer is not None:
            self._dispose(self._producer)
            self._producer = None
        self._errors = ProducerErrors()
        self._initialised = False

    def _dispose(self, producer: Producer) -> None:
        with contextlib.suppress(Exception):
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.poll(0)
        self._stale()
