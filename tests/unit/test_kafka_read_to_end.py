"""``read_to_end`` against a scripted reader consumer and a clock that only its ``consume``
moves: where each kind of end lies, what a batch holds, and the deadline, the idle bound and a
record's error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from core.errors import StoreUnavailableError
from plugins.kafka import read_to_end as module
from plugins.kafka.read_to_end import Batch, read_to_end
from tests.unit.test_kafka_writer_faults import FakeMessage

TOPIC = "fake.events"


def record(partition: int, offset: int, error: KafkaError | None = None) -> FakeMessage:
    return FakeMessage(b"", offset, error, partition)


def eof(partition: int, offset: int) -> FakeMessage:
    return record(partition, offset, KafkaError(KafkaError._PARTITION_EOF))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class ScriptedConsumer:
    """Each ``consume`` returns the next scripted batch (then nothing) and moves the clock by
    its timeout; ``position`` answers from ``positions``."""

    def __init__(self, clock: Clock, *batches: list[FakeMessage]) -> None:
        self.clock = clock
        self.batches = list(batches)
        self.consumed = 0
        self.positions: dict[int, int] = {}

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self.consumed += 1
        assert self.consumed < 1000, "read on without an end"
        self.clock.now += timeout
        return self.batches.pop(0) if self.batches else []

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get(tp.partition, 0))
            for tp in partitions
        ]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(module, "time", fake)
    return fake


def _read(consumer: ScriptedConsumer, partitions: list[int], **options: Any) -> Iterator[Batch]:
    settings: dict[str, Any] = {"deadline": None, "idle": 10.0, "batch_size": 100}
    settings.update(options)
    reader: Any = consumer
    return read_to_end(reader, TOPIC, partitions, what=f"reading {TOPIC}", **settings)


def _offsets(batches: Iterator[Batch]) -> list[list[tuple[int, int]]]:
    return [[(m.partition() or 0, m.offset() or 0) for m in batch] for batch in batches]


def test_each_partition_is_read_to_its_end_of_partition_event(clock: Clock) -> None:
    consumer = ScriptedConsumer(
        clock, [record(0, 0), record(1, 0), eof(1, 1)], [], [record(0, 1), eof(0, 2)]
    )
    assert _offsets(_read(consumer, [0, 1])) == [[(0, 0), (1, 0)], [(0, 1)]]
    assert consumer.consumed == 3  # an empty batch is no batch


def test_a_batch_gives_each_partitions_next_offset(clock: Clock) -> None:
    consumer = ScriptedConsumer(clock, [record(0, 3), record(1, 7), eof(1, 9), eof(0, 4)])
    batches = _read(consumer, [0, 1])
    batch = next(batches)
    assert [m.offset() for m in batch] == [3, 7]
    # Past the last record, or the end an end-of-partition event reported when further (a
    # transaction's marker lies between).
    assert batch.next_offsets == {0: 4, 1: 9}


def test_a_record_after_the_end_of_partition_event_opens_the_partition_again(
    clock: Clock,
) -> None:
    consumer = ScriptedConsumer(clock, [eof(0, 1), record(0, 1)], [eof(0, 2)])
    assert _offsets(_read(consumer, [0])) == [[(0, 1)], []]


def test_partitions_already_at_their_end_are_not_read(clock: Clock) -> None:
    consumer = ScriptedConsumer(clock, [record(0, 0), eof(0, 1)])
    assert list(_read(consumer, [0, 1], at_end=[0, 1])) == []
    assert consumer.consumed == 0
    assert _offsets(_read(consumer, [0, 1], at_end=[1])) == [[(0, 0)]]


def test_with_captured_ends_an_earlier_end_of_partition_event_does_not_end_the_read(
    clock: Clock,
) -> None:
    consumer = ScriptedConsumer(clock, [record(0, 0), eof(0, 1)], [record(0, 1), eof(0, 2)])
    assert _offsets(_read(consumer, [0], ends={0: 2})) == [[(0, 0)], [(0, 1)]]


def test_with_captured_ends_the_position_at_the_end_ends_the_read(clock: Clock) -> None:
    consumer = ScriptedConsumer(clock, [record(0, 0)], [record(0, 5)])
    consumer.positions = {0: 2}  # past a transaction's marker at offset 1
    assert _offsets(_read(consumer, [0], ends={0: 2})) == [[(0, 0)]]
    assert consumer.consumed == 1


def test_with_captured_ends_a_partition_at_its_end_stays_there(clock: Clock) -> None:
    consumer = ScriptedConsumer(clock, [eof(0, 2), record(0, 2)], [record(0, 3)])
    assert _offsets(_read(consumer, [0], ends={0: 2})) == [[(0, 2)]]


def test_first_end_stops_at_the_end_of_partition_event(clock: Clock) -> None:
    consumer = ScriptedConsumer(clock, [record(0, 0), eof(0, 1), record(0, 1)])
    batches = _read(consumer, [0], first_end=True)
    batch = next(batches)
    assert [m.offset() for m in batch] == [0]
    assert batch.next_offsets == {0: 1}
    assert list(batches) == []


def test_past_the_deadline_the_read_times_out(clock: Clock) -> None:
    consumer = ScriptedConsumer(clock, [record(0, 0)])
    batches = _read(consumer, [0], deadline=0.3, idle=None)
    assert _offsets(iter([next(batches)])) == [[(0, 0)]]
    with pytest.raises(StoreUnavailableError, match=f"^reading {TOPIC} timed out$"):
        next(batches)
    assert clock.now > 0.3
    assert consumer.consumed == 2  # none after the deadline


def test_a_read_that_receives_nothing_for_the_idle_bound_gives_up(clock: Clock) -> None:
    consumer = ScriptedConsumer(clock, [], [record(0, 0)])
    batches = _read(consumer, [0], idle=1.0)
    next(batches)  # a message resets the bound
    with pytest.raises(StoreUnavailableError, match=f"^reading {TOPIC}: no answer$"):
        next(batches)
    assert consumer.consumed > 2  # polled on after the message, until the bound


def test_a_records_error_is_a_store_error(clock: Clock) -> None:
    failure = KafkaError(KafkaError._TRANSPORT)
    consumer = ScriptedConsumer(clock, [record(0, 0), record(0, 1, failure)])
    records = iter(next(_read(consumer, [0])))
    assert next(records).offset() == 0  # the records before it come first
    with pytest.raises(StoreUnavailableError, match=f"^cannot read {TOPIC}: ") as raised:
        next(records)
    cause = raised.value.__cause__
    assert isinstance(cause, KafkaException)
    assert cause.args[0].code() == KafkaError._TRANSPORT


def test_what_the_caller_leaves_unread_of_a_batch_is_read_before_the_next(clock: Clock) -> None:
    consumer = ScriptedConsumer(clock, [record(0, 0), eof(0, 1)], [record(0, 1), eof(0, 2)])
    batches = _read(consumer, [0])
    next(batches)  # not read: its end-of-partition event still counts
    assert list(batches) == []
    assert consumer.consumed == 1
