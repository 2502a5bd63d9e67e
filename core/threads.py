"""The operating system's name for each of the server's threads.

Python 3.11 names a thread for Python only; the kernel, and so ``top -H``, ``ps -L``,
``/proc/<pid>/task/*/comm`` and profilers, sees every thread as ``python``. A thread that calls
``name_this_thread()`` first thing is shown as a short form of its Python name instead, which is
how an operator tells the SQLite writer from the event loop when one of them is busy, and how the
latency benchmark attributes the server's CPU time to its threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, Final

__all__ = ["MAX_NATIVE_NAME", "name_this_thread", "native_name"]

MAX_NATIVE_NAME: Final = 15  # bytes, without the terminating NUL (Linux's TASK_COMM_LEN - 1)
_PR_SET_NAME: Final = 15


def native_name(name: str) -> str:
    """``role:subject`` as at most 15 bytes: the role's first word and the initial of each
    other word, the subject without a ``.db`` suffix. "sqlite-writer:events.db" becomes
    "sqlite-w:events", "kafka-tailer:balance.events" "kafka-t:balance"."""
    role, _, subject = name.partition(":")
    words = role.split("-")
    short_role = "-".join([words[0], *(word[:1] for word in words[1:])])
    short_subject = re.sub(r"\.db\b", "", subject)
    text = f"{short_role}:{short_subject}" if subject else short_role
    return text.encode("utf-8")[:MAX_NATIVE_NAME].decode("utf-8", "ignore")


def _find_prctl() -> Callable[..., Any] | None:
    if not sys.platform.startswith("linux"):
        return None
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        prctl: Callable[..., Any] = ctypes.CDLL(path, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_prctl: Final = _find_prctl()


def name_this_thread() -> None:
    """Give the calling thread its Python name's short form as its native name (Linux only;
    elsewhere nothing). Also usable as a ``ThreadPoolExecutor`` initializer."""
    if _prctl is None:
        return
    name = native_name(threading.current_thread().name).encode("utf-8")
    _prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
