"""Pure-Python twins of ``_native/durable.pyx`` (same system calls, same
order, same results; tests/unit/test_durable_twins.py runs both).

The native versions make these steps without holding the GIL; these make
them one ``os`` call at a time. Selection: ``storage_node.drive`` uses the
native module unless ``RINGSTACK_PUREPYTHON=1`` or it was not built.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["close_fds", "commit_locked", "create_synced", "fsync_dir", "lock_linked_dir", "makedirs_durable",
           "open_lock_file"]

RELOCK_TRIES = 100


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_durable(path: str | Path) -> None:
    """Create ``path`` and parents, fsyncing each new entry into its parent
    (one made by someone else meanwhile is theirs to fsync)."""
    missing = []
    p = Path(path)
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        fsync_dir(d.parent)


def create_synced(path: str | Path, parts: Sequence[bytes | bytearray | memoryview]) -> None:
    """Create ``path`` (``O_EXCL``, 0644), write ``parts``, fdatasync, close;
    on failure remove it and raise."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        for part in parts:
            mv = memoryview(part)
            while len(mv):
                mv = mv[os.write(fd, mv):]
        os.fdatasync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


def lock_linked_dir(path: str | Path) -> int:
    """Create ``path`` durably and return a descriptor holding an exclusive
    ``flock`` on the directory linked there once the lock is held (an empty
    hash directory may be removed, or replaced, between our mkdir and our
    flock: then it is created and locked anew)."""
    for tries in range(RELOCK_TRIES):
        if tries >= 2:
            # Lost the race to a rehash removing the directory again: give it
            # time to finish, as the native kernel does (usleep(100)).
            time.sleep(0.0001)
        try:
            makedirs_durable(path)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:  # a parent removed under our mkdir
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            linked = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if held.st_nlink > 0 and (held.st_dev, held.st_ino) == (linked.st_dev, linked.st_ino):
            return fd
        os.close(fd)
    raise OSError(errno.EAGAIN, "hash directory keeps vanishing under its lock", str(path))


def open_lock_file(path: str | Path) -> int:
    """Open (creating) a partition lock file; its directory is created
    durably when missing."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        makedirs_durable(os.path.dirname(path))
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)


def commit_locked(lock_path: str | Path, dest_dir: str | Path, tmp_path: str | Path,
                  name: str) -> tuple[int, int, list[str]]:
    """Take the partition lock (shared; its directory created durably if
    missing) and the lock of ``dest_dir`` (``lock_linked_dir``), rename
    ``tmp_path`` to ``dest_dir/name``, fsync the directory and list it.
    Returns ``(lock_fd, dir_fd, names)`` with both locks held (``close_fds``)."""
    lock_fd = open_lock_file(lock_path)
    dir_fd = -1
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_SH)
        dir_fd = lock_linked_dir(dest_dir)
        os.rename(tmp_path, os.path.join(dest_dir, name))
        os.fsync(dir_fd)
        names = os.listdir(dir_fd)
    except BaseException:
        close_fds(dir_fd, lock_fd)
        raise
    return lock_fd, dir_fd, names


def close_fds(a: int, b: int) -> None:
    """Close two descriptors (releasing their locks); -1 is skipped."""
    for fd in (a, b):
        if fd >= 0:
            os.close(fd)
