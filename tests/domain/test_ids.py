"""New ids are UUIDv7: valid RFC 9562 UUIDs whose order follows the clock."""

from __future__ import annotations

import time
import uuid

from handlers.accounts.ids import new_id


def test_new_ids_are_version_7_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    texts = [new_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    ids = [uuid.UUID(text) for text in texts]
    assert [str(u) for u in ids] == texts  # the canonical form: lower case, 8-4-4-4-12
    assert {u.version for u in ids} == {7}
    assert {u.variant for u in ids} == {uuid.RFC_4122}
    assert all(before <= u.int >> 80 <= after for u in ids)
    assert len(set(ids)) == len(ids)


def test_ids_from_later_milliseconds_sort_after_earlier_ones() -> None:
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert first < second  # as text, as the stores' indexes compare them
