"""The producer's callbacks: where each produced record landed (``Delivery``), and whether
every broker went away (``ProducerErrors``).

librdkafka calls both inside ``flush``/``poll``. Neither may raise: an exception escaping a
callback comes out of that call (as itself, or as ``SystemError: ... returned a result with an
exception set``) instead of as the record's outcome."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError

__all__ = ["Delivery", "ProducerErrors"]


@dataclass(slots=True)
class Delivery:
    """Where one produced record landed (filled by the delivery callback)."""

    partition: int = -1
    offset: int = -1
    error: KafkaError | BaseException | None = None
    done: bool = False

    def __call__(self, error: KafkaError | None, message: Any) -> None:
        try:
            if error is not None:
                self.error = error
            else:
                self.partition = int(message.partition())
                self.offset = int(message.offset())
        except BaseException as failure:  # the record's outcome, never librdkafka's problem
            self.error = failure
        finally:
            self.done = True

    @property
    def placed(self) -> bool:
        return self.done and self.error is None and self.partition >= 0 and self.offset >= 0


@dataclass(slots=True)
class ProducerErrors:
    """One producer's ``error_cb``. It notes that every broker went away (a restart, say): the
    writer then replaces the producer, and the new one checks the partitions for a transaction
    the restart left open (hanging.py) before the next append.

    A fatal error (fenced, ...) never comes here: confluent-kafka raises it out of the call
    that serves it, as a ``KafkaException``, or as ``SystemError: Delivery.__call__ returned a
    result with an exception set`` when a delivery report is served after it in the same
    ``flush``. Either way the writer drops that producer (``ProducerLifecycle.abort``)."""

    brokers_lost: bool = False

    def __call__(self, error: KafkaError) -> None:
        with contextlib.suppress(BaseException):
            if error.code() == KafkaError._ALL_BROKERS_DOWN:
                self.brokers_lost = True
