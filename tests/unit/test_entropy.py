"""random_bytes: CSPRNG bytes from a buffer, never handed out twice, not shared with a fork."""

from __future__ import annotations

import os

import pytest

from core.entropy import random_bytes


def test_gives_the_size_asked_and_never_the_same_bytes_twice() -> None:
    # 5,000 x 10 bytes crosses a dozen refills of the 4 KiB buffer.
    taken = [random_bytes(10) for _ in range(5000)]
    assert {len(chunk) for chunk in taken} == {10}
    assert len(set(taken)) == len(taken)
    assert len(random_bytes(10_000)) == 10_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_the_parents_buffer() -> None:
    random_bytes(16)  # the parent's buffer now holds unread bytes
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(writer, random_bytes(16))
        os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    child = os.read(reader, 16)
    os.close(reader)
    assert len(child) == 16
    assert child != random_bytes(16)
