"""Fault-injecting real disk drive layer (FAULTS 3, 11): see the
``storage_node.drive`` docstring for the sentinel files. Used only when the
cluster config says ``[storage] fault_injection = true``."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

from storage_node.drive import DiskDrives, TempFile, _DiskTemp, _fsync_dir

CRASH_POINTS = ("before-fsync", "after-fsync-before-rename", "after-rename-before-index")
ENOSPC_SENTINEL = ".fault-enospc"
CRASH_PREFIX = ".fault-crash-"


class _FaultyTemp(_DiskTemp):
    __slots__ = ("root", "faults", "room")
    DEFER = False  # the file exists from the start, so a crash point before fsync leaves it behind

    def __init__(self, root: Path, direct: bool = False) -> None:
        self.root = root
        self.faults = frozenset(n for n in os.listdir(root) if n.startswith(".fault-"))
        self.room = -1  # bytes left before ENOSPC; -1: unlimited
        if ENOSPC_SENTINEL in self.faults:
            try:
                self.room = int((root / ENOSPC_SENTINEL).read_text().strip() or 4096)
            except (OSError, ValueError):
                self.room = 4096
        super().__init__(root, direct)

    def _crash(self, point: str) -> None:
        name = CRASH_PREFIX + point
        if name in self.faults:
            try:
                os.unlink(self.root / name)
                _fsync_dir(self.root)
            except FileNotFoundError:
                pass
            os.kill(os.getpid(), signal.SIGKILL)

    def _take_room(self, n: int) -> None:
        if self.room >= 0:
            if n > self.room:
                raise OSError(errno.ENOSPC, "No space left on device (injected)", str(self.path))
            self.room -= n

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._take_room(len(data))
        super().write(data)

    def filled(self, n: int) -> None:
        self._take_room(n)
        super().filled(n)

    def fsync(self) -> None:
        self._crash("before-fsync")
        super().fsync()

    def commit(self, dest_dir: Path, name: str) -> None:
        self._crash("after-fsync-before-rename")
        super().commit(dest_dir, name)
        self._crash("after-rename-before-index")


class FaultyDiskDrives(DiskDrives):
    """``DiskDrives`` with the sentinel-file faults of the module docstring."""

    def open_temp(self, root: Path, direct: bool = False) -> TempFile:
        return _FaultyTemp(root, direct)
