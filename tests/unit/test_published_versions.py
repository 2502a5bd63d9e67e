"""The projector publishes each event once: what it remembers of the versions it published."""

from __future__ import annotations

from core.records import EventRecord
from handlers.accounts.projector import PublishedVersions
from tests.support import event_record


def versions(events: list[EventRecord]) -> list[tuple[str, int]]:
    return [(e.stream_id, e.version) for e in events]


def test_an_event_applied_again_is_not_new() -> None:
    published = PublishedVersions()
    first = [event_record("a", 1), event_record("b", 1), event_record("a", 2)]
    assert versions(published.new(first)) == [("a", 1), ("b", 1), ("a", 2)]
    again = [event_record("a", 2), event_record("b", 1), event_record("b", 2)]
    assert versions(published.new(again)) == [("b", 2)]
    assert published.new(again) == []


def test_only_the_streams_published_most_recently_are_remembered() -> None:
    published = PublishedVersions(limit=2)
    published.new([event_record("a", 1), event_record("b", 1)])
    published.new([event_record("a", 2)])  # a is now the most recent
    published.new([event_record("c", 1)])  # b, the oldest, is forgotten
    assert published.new([event_record("a", 2), event_record("c", 1)]) == []
    assert versions(published.new([event_record("b", 1)])) == [("b", 1)]
