"""The files of the SQLite read model's generations, and the pointer that names the live one.

Generation 0 is ``views.db`` (the read model as it was before any blue/green rebuild); generation
N is ``views.gN.db``. ``views.generation`` holds the live generation's number; without it,
generation 0 is live. The switch writes the new number to a temporary file, syncs it, and renames
it over the pointer: a rename is atomic, so every reader sees the old number or the new one,
never a mix, and a crash leaves one of the two. Readers notice a switch by the pointer's
``stat`` (a new inode), which costs about a microsecond per query.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Final

from plugins.sqlite.schema import VIEWS_FILE

__all__ = ["GenerationFiles", "PointerSignature"]

POINTER: Final = "views.generation"
REBUILD_LOCK: Final = "views.rebuild.lock"
_NUMBERED: Final = re.compile(r"views\.g(\d+)\.db")
_SIDE_FILES: Final = ("", "-wal", "-shm", "-journal")

# What a reader compares to learn that the pointer changed: inode, size and modification time.
PointerSignature = tuple[int, int, int] | None


class GenerationFiles:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pointer = data_dir / POINTER
        self.rebuild_lock = data_dir / REBUILD_LOCK

    def path(self, number: int) -> Path:
        return self.data_dir / (VIEWS_FILE if number == 0 else f"views.g{number}.db")

    def signature(self) -> PointerSignature:
        try:
            found = os.stat(self.pointer)
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_size, found.st_mtime_ns

    def live(self) -> int:
        try:
            text = self.pointer.read_text(encoding="ascii")
        except FileNotFoundError:
            return 0
        return int(text.strip())

    def point_to(self, number: int) -> None:
        """Make ``number`` the live generation: one atomic rename, synced before and after."""
        temporary = self.pointer.with_name(f"{POINTER}.tmp")
        with open(temporary, "w", encoding="ascii") as file:
            file.write(f"{number}\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.pointer)
        self._sync_directory()

    def existing(self) -> set[int]:
        """The generations with a file in the data directory."""
        numbers = {
            int(match.group(1))
            for name in os.listdir(self.data_dir)
            if (match := _NUMBERED.fullmatch(name)) is not None
        }
        if self.path(0).exists():
            numbers.add(0)
        return numbers

    def remove(self, number: int) -> None:
        """Delete a generation's files. Connections that still have them open keep reading
        them (POSIX keeps an unlinked file until it is closed); names are never reused."""
        base = self.path(number)
        for suffix in _SIDE_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{base}{suffix}")

    def sync(self, number: int) -> None:
        """Flush a generation's database file to disk."""
        descriptor = os.open(self.path(number), os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _sync_directory(self) -> None:
        descriptor = os.open(self.data_dir, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
