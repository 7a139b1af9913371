"""The drive layer: every file operation the object side does, behind one
protocol, with a real disk implementation and an in-memory one (for the
whole-cluster simulation; DESIGN "Injected world").

All methods are blocking and are called from worker threads under the drive's
``CapacityLimiter``. Durability contract of ``TempFile.commit`` (invariant 1):
the file's own fsync is done before the rename, every directory created on
the way is fsynced into its parent, and the destination directory is fsynced
after the rename, so once ``commit`` returns the file survives a crash.
``OSError(ENOSPC)`` and friends propagate; the shell maps them to 507.

``DriveLayer.commit_temp`` is how writers commit: the partition lock
(shared), the directory lock, ``TempFile.commit``, and the directory's
listing for ``settle``, with both locks held. On the real disk a small temp
file is created at ``fsync`` and both steps run as one call each without the
GIL (``_native/durable.pyx``; docs/DECISIONS.md says why); the system calls,
their order and the contract above are the same.

Fault injection (FAULTS 3 and 11 with real processes):
``storage_node._fault_drive.FaultyDiskDrives`` is ``DiskDrives`` plus
sentinel files in the drive root, used only when the
cluster config says ``[storage] fault_injection = true`` (otherwise the plain
class runs and nothing is checked). Each temp file lists the drive root once
when it is opened (one ``os.listdir`` per write) and remembers its faults:

- ``.fault-enospc``: a temp file may hold at most N bytes (N = the file's
  content, default 4096), then ``write`` raises ``OSError(ENOSPC)``; small
  tombstones and ``.meta`` files still fit, as on a drive kept above
  ``reserve_bytes``. ``free_bytes`` is left alone, so a PUT passes its reserve
  check and meets ENOSPC mid-write (the race the reserve cannot catch).
- ``.fault-crash-<point>``: the process SIGKILLs itself at that point of
  ``TempFile``: ``before-fsync`` (body written, not fsynced),
  ``after-fsync-before-rename``, ``after-rename-before-index`` (renamed and
  directory fsynced; before settle and the index commit). The sentinel is
  removed first, so the restarted node runs clean.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import mmap
import os
import shutil
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from common.memory import BufferPool
from storage_node import _durable_twins as _twins


class DriveUnavailable(Exception):
    """The drive is missing, not mounted or full: 507 for this drive only."""

    status = 507


class TempFile(Protocol):
    def write(self, data: bytes | bytearray | memoryview) -> None: ...
    # ``space()``: a buffer the next bytes may be put straight into (None:
    # use ``write``); ``filled(n)``: its first n bytes are the next ones.
    def space(self) -> memoryview | None: ...
    def filled(self, n: int) -> None: ...
    def fsync(self) -> None: ...
    def commit(self, dest_dir: Path, name: str) -> None: ...
    def abort(self) -> None: ...


class ReadHandle(Protocol):
    size: int

    def read_at(self, offset: int, n: int) -> bytes: ...
    def close(self) -> None: ...


class DriveLayer(Protocol):
    def check(self, root: Path, mount_check: bool) -> None: ...
    def open_temp(self, root: Path, direct: bool = False) -> TempFile: ...
    def open_read(self, path: Path) -> ReadHandle: ...
    def listdir(self, path: Path) -> list[str]: ...
    def read_bytes(self, path: Path) -> bytes: ...
    def unlink(self, path: Path) -> None: ...
    def fsync_dir(self, path: Path) -> None: ...
    def move_dir(self, src: Path, dst: Path) -> None: ...
    def remove_empty_dirs(self, path: Path, stop: Path) -> None: ...
    def clean_temp(self, root: Path) -> int: ...
    def lock_dir(self, path: Path) -> AbstractContextManager[None]: ...
    def lock_partition(self, root: Path, partition: int, shared: bool) -> AbstractContextManager[None]: ...
    def commit_temp(self, tmp: TempFile, root: Path, partition: int, dest_dir: Path,
                    name: str) -> AbstractContextManager[list[str] | None]: ...
    def free_bytes(self, root: Path) -> int: ...


@contextmanager
def commit_under_locks(drives: DriveLayer, tmp: TempFile, root: Path, partition: int, dest_dir: Path,
                       name: str) -> Iterator[list[str] | None]:
    """``DriveLayer.commit_temp`` from the layer's own steps: the partition
    lock (shared), the directory lock, ``tmp.commit``; yields None (the
    caller lists the directory itself) with both locks held."""
    with drives.lock_partition(root, partition, True), drives.lock_dir(dest_dir):
        tmp.commit(dest_dir, name)
        yield None


# -- real disk ---------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_fsync_dir = _twins.fsync_dir
_makedirs_durable = _twins.makedirs_durable


def _durable_kernels() -> Any:
    """``_native.durable`` unless ``RINGSTACK_PUREPYTHON=1`` or not built;
    else its twins (``_durable_twins``)."""
    if os.environ.get("RINGSTACK_PUREPYTHON", "") not in ("", "0"):
        return _twins
    try:
        from _native import durable
    except ImportError:
        print("ringstack: _native.durable not built; using the pure-Python twins", file=sys.stderr)
        return _twins
    return durable


_DURABLE = _durable_kernels()


class _TempNames:
    """Temp file names ``<pid>-<random><counter>.tmp``: unique without a
    ``getpid`` and a ``getrandom`` per file (the pid leads, for
    ``clean_temp``); a forked worker draws its own prefix."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.prefix = f"{os.getpid()}-{uuid.uuid4().hex[:16]}"
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):x}.tmp"


_TEMP_NAMES = _TempNames()


DIRECT_ALIGN = 4096  # file offsets, lengths and buffer addresses of O_DIRECT I/O
DIRECT_MIN = 1 << 20  # files over this size (or of unknown size) are written with O_DIRECT
DIRECT_BUFFER = 1 << 20
BUFFERED_WRITE_MAX = 1 << 20
_BUFFERS = BufferPool(DIRECT_BUFFER, keep=16)  # page-aligned, reused (``common.memory``)


class _DiskTemp:
    """A temp file in ``<root>/tmp``, written, fsynced, then renamed in place.

    ``direct``: the bytes bypass the page cache (``O_DIRECT``). They gather in
    a page-aligned buffer (copied by ``write``, or read straight into it by
    the caller: ``space`` / ``filled``) written ``DIRECT_BUFFER`` at a time; ``fsync``
    writes the last partial block padded with zeros, truncates the file to
    its exact size, then fdatasyncs (the data and the size), so the
    durability contract is the same. Why: large objects are written once and
    rarely read back at once (Swift drops them from the cache too); on the
    development VM a 4 MiB body written and fdatasynced in 256 KiB pieces
    costs ~2.2 ms of CPU buffered and ~1.5 ms direct, and the cluster's CPU
    per 4 MiB PUT fell ~7 % (``ringstack bench memory``, RESULTS.md). A cold
    read of such a file costs ~0.8 ms more than a cached one. No buffered
    ``write`` call may exceed 1 MiB: one 4 MiB call costs ~8x as much
    there. A file system that refuses ``O_DIRECT`` (``EINVAL``) gets plain
    buffered writes."""

    __slots__ = ("path", "fd", "_buf", "_fill", "_size", "_held")

    # Buffered files are created at ``fsync`` (one call: create, write,
    # fdatasync, close; ``_native.durable``) while they stay under
    # ``DEFER_MAX`` bytes: a small PUT's body and trailer, a tombstone. A
    # subclass that must see the file early (fault injection) says False.
    DEFER = True
    DEFER_MAX = 1 << 16

    def __init__(self, root: Path, direct: bool = False) -> None:
        self.path = root / "tmp" / _TEMP_NAMES.next()  # pid first: see clean_temp
        self._buf: mmap.mmap | None = None
        self._fill = self._size = 0
        self._held: list[bytes] | None = None  # a deferred file's bytes
        self.fd: int | None = None
        if direct:
            buf = _BUFFERS.take()
            try:
                self.fd = self._open(os.O_DIRECT)
            except OSError as exc:
                _BUFFERS.give(buf)
                if exc.errno != errno.EINVAL:
                    raise
            else:
                self._buf = buf
        if self.fd is None:
            if self.DEFER:
                self._held = []
            else:
                self.fd = self._open(0)

    def _open(self, extra: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | extra
        try:
            return os.open(self.path, flags, 0o644)
        except FileNotFoundError:  # no <root>/tmp yet
            _makedirs_durable(self.path.parent)
            return os.open(self.path, flags, 0o644)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._size += len(data)
            held.append(bytes(data))
            if self._size <= self.DEFER_MAX:
                return
            self._held = None  # too big to hold: the file is written from here on
            self.fd = self._open(0)
            data = b"".join(held)
        assert self.fd is not None
        mv = memoryview(data)
        buf = self._buf
        if buf is None:
            while len(mv):  # at most 1 MiB per call (see the class docstring)
                n = os.write(self.fd, mv[:BUFFERED_WRITE_MAX])
                mv = mv[n:]
            return
        self._size += len(mv)
        while len(mv):
            take = min(len(mv), DIRECT_BUFFER - self._fill)
            buf[self._fill : self._fill + take] = mv[:take]
            self._fill += take
            mv = mv[take:]
            if self._fill == DIRECT_BUFFER:
                self._write_buffer(DIRECT_BUFFER)
                self._fill = 0

    def space(self) -> memoryview | None:
        """The direct buffer's free part, for bytes read straight into it (no
        copy before the write); None for a buffered or deferred file. Valid
        until ``filled``."""
        if self._buf is None:
            return None
        return memoryview(self._buf)[self._fill:]

    def filled(self, n: int) -> None:
        self._size += n
        self._fill += n
        if self._fill == DIRECT_BUFFER:
            self._write_buffer(DIRECT_BUFFER)
            self._fill = 0

    def _write_buffer(self, n: int) -> None:
        assert self.fd is not None and self._buf is not None
        view = memoryview(self._buf)[:n]
        try:
            while len(view):
                view = view[os.write(self.fd, view):]
        finally:
            view.release()

    def fsync(self) -> None:
        if self._held is not None:
            try:
                _DURABLE.create_synced(self.path, self._held)
            except FileNotFoundError:  # no <root>/tmp yet
                _makedirs_durable(self.path.parent)
                _DURABLE.create_synced(self.path, self._held)
            self._held = None
            return
        assert self.fd is not None
        if self._buf is not None and self._fill:
            padded = -(-self._fill // DIRECT_ALIGN) * DIRECT_ALIGN
            self._buf[self._fill : padded] = bytes(padded - self._fill)
            self._write_buffer(padded)
            self._fill = 0
            os.ftruncate(self.fd, self._size)
        os.fdatasync(self.fd)

    def _close(self) -> None:
        if self._buf is not None:
            _BUFFERS.give(self._buf)
            self._buf = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    @property
    def on_disk(self) -> bool:
        """The file exists (a deferred one from its ``fsync`` on)."""
        return self._held is None

    def commit(self, dest_dir: Path, name: str) -> None:
        assert self._held is None, "fsync before commit"
        self._close()
        _makedirs_durable(dest_dir)
        os.rename(self.path, dest_dir / name)
        _fsync_dir(dest_dir)

    def abort(self) -> None:
        self._close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class _DiskReader:
    __slots__ = ("fd", "size")

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def read_at(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def close(self) -> None:
        os.close(self.fd)


class DiskDrives:
    """The real drive layer: plain files, POSIX fsync and rename."""

    def check(self, root: Path, mount_check: bool) -> None:
        if not root.is_dir():
            raise DriveUnavailable(f"drive {root} is missing")
        if mount_check and not os.path.ismount(root):
            raise DriveUnavailable(f"drive {root} is not mounted")

    def open_temp(self, root: Path, direct: bool = False) -> TempFile:
        return _DiskTemp(root, direct)

    def free_bytes(self, root: Path) -> int:
        st = os.statvfs(root)
        return st.f_bavail * st.f_frsize

    def open_read(self, path: Path) -> ReadHandle:
        return _DiskReader(path)

    def listdir(self, path: Path) -> list[str]:
        try:
            return os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read_bytes(self, path: Path) -> bytes:
        return path.read_bytes()

    def unlink(self, path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def fsync_dir(self, path: Path) -> None:
        _fsync_dir(path)

    def move_dir(self, src: Path, dst: Path) -> None:
        _makedirs_durable(dst.parent)
        if dst.exists():
            dst = dst.with_name(f"{dst.name}-{uuid.uuid4().hex[:8]}")
        os.rename(src, dst)
        _fsync_dir(dst.parent)
        _fsync_dir(src.parent)

    def clean_temp(self, root: Path) -> int:
        """Remove temp files (and aborted partition drops) left in
        ``<root>/tmp`` by writers that died (their pid is in the name and no
        longer runs), e.g. a crash before rename (FAULTS 3). Returns how many."""
        tmp = root / "tmp"
        removed = 0
        for name in self.listdir(tmp):
            pid_s = name.removeprefix("drop-").split("-", 1)[0]
            if not pid_s.isdigit() or _alive(int(pid_s)):
                continue
            p = tmp / name
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                self.unlink(p)
            removed += 1
        return removed

    def remove_empty_dirs(self, path: Path, stop: Path) -> None:
        p = path
        while p != stop and stop in p.parents:
            try:
                p.rmdir()
            except OSError:
                return
            p = p.parent

    @contextmanager
    def lock_dir(self, path: Path) -> Iterator[None]:
        """Create ``path`` durably and hold an exclusive ``flock`` on it:
        serialises settling one object across threads and worker processes.

        Empty hash directories are removed (``remove_empty_dirs``) only by a
        holder of this lock, but a rehash may remove one, or its suffix
        directory, between our ``mkdir`` and our ``open``/``flock``. So the
        lock is taken on what is linked at ``path`` once we hold it: a
        vanished or replaced directory is created again and locked anew.
        While the lock is held, ``path`` is the directory we locked."""
        fd = _twins.lock_linked_dir(path)
        try:
            yield
        finally:
            os.close(fd)

    @contextmanager
    def lock_partition(self, root: Path, partition: int, shared: bool) -> Iterator[None]:
        """``flock`` on ``<root>/locks/<partition>.lock``: writers that make
        files visible hold it shared, a partition drop holds it exclusive
        (invariant 3: nothing deleted while a write may be landing)."""
        fd = _twins.open_lock_file(root / "locks" / f"{partition}.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def commit_temp(self, tmp: TempFile, root: Path, partition: int, dest_dir: Path,
                    name: str) -> Iterator[list[str] | None]:
        """Move a synced temp file into ``dest_dir`` under the partition lock
        (shared) and the directory lock, and yield the directory's listing
        with both still held. A plain ``_DiskTemp`` on this class takes all
        those steps in one ``_native.durable.commit_locked`` call (the same
        system calls as ``lock_partition``, ``lock_dir`` and
        ``_DiskTemp.commit``, without the GIL); a subclass or another temp
        file type goes step by step (``commit_under_locks``), so injected
        faults still fire where they should."""
        if type(self) is not DiskDrives or type(tmp) is not _DiskTemp:
            with commit_under_locks(self, tmp, root, partition, dest_dir, name) as names:
                yield names
            return
        assert tmp.on_disk, "fsync before commit"
        tmp._close()
        lock_fd, dir_fd, listing = _DURABLE.commit_locked(
            root / "locks" / f"{partition}.lock", dest_dir, tmp.path, name)
        try:
            yield listing
        finally:
            _DURABLE.close_fds(dir_fd, lock_fd)


# -- in memory ---------------------------------------------------------------

class MemoryDrives:
    """An in-memory drive layer for simulations: a dict of paths. Directories
    exist implicitly (a path prefix of a file) or explicitly (``mkdir``).
    ``capacity`` bytes per drive root makes writes raise ENOSPC; ``missing``
    roots answer 507."""

    def __init__(self, capacity: int | None = None) -> None:
        self.files: dict[Path, bytes] = {}
        self.dirs: set[Path] = set()
        self.missing: set[Path] = set()
        self.capacity = capacity
        self._lock = threading.Lock()
        self._dir_locks: dict[Path, threading.Lock] = {}
        self._part_locks: dict[Path, tuple[threading.Condition, list[int]]] = {}

    def mkdir(self, path: Path) -> None:
        with self._lock:
            self.dirs.add(path)

    def _used(self, root: Path) -> int:
        return sum(len(v) for k, v in self.files.items() if root in k.parents)

    def check(self, root: Path, mount_check: bool) -> None:
        if root in self.missing or root not in self.dirs:
            raise DriveUnavailable(f"drive {root} is missing")

    def open_temp(self, root: Path, direct: bool = False) -> TempFile:
        return _MemTemp(self, root)  # no page cache to bypass

    def free_bytes(self, root: Path) -> int:
        if self.capacity is None:
            return 1 << 62
        with self._lock:
            return max(0, self.capacity - self._used(root))

    def open_read(self, path: Path) -> ReadHandle:
        with self._lock:
            if path not in self.files:
                raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
            return _MemReader(self.files[path])

    def listdir(self, path: Path) -> list[str]:
        with self._lock:
            return sorted({k.relative_to(path).parts[0] for k in self.files if path in k.parents})

    def read_bytes(self, path: Path) -> bytes:
        with self._lock:
            if path not in self.files:
                raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
            return self.files[path]

    def unlink(self, path: Path) -> None:
        with self._lock:
            self.files.pop(path, None)

    def fsync_dir(self, path: Path) -> None:
        return None

    def move_dir(self, src: Path, dst: Path) -> None:
        with self._lock:
            for k in [k for k in self.files if src in k.parents]:
                self.files[dst / k.relative_to(src)] = self.files.pop(k)

    def remove_empty_dirs(self, path: Path, stop: Path) -> None:
        return None  # directories exist only through their files

    def clean_temp(self, root: Path) -> int:
        return 0  # in-memory temp files die with their writer

    @contextmanager
    def lock_dir(self, path: Path) -> Iterator[None]:
        with self._lock:
            lock = self._dir_locks.setdefault(path, threading.Lock())
        with lock:
            yield

    def commit_temp(self, tmp: TempFile, root: Path, partition: int, dest_dir: Path,
                    name: str) -> AbstractContextManager[list[str] | None]:
        return commit_under_locks(self, tmp, root, partition, dest_dir, name)

    @contextmanager
    def lock_partition(self, root: Path, partition: int, shared: bool) -> Iterator[None]:
        key = root / "locks" / str(partition)
        with self._lock:
            cond = self._part_locks.setdefault(key, (threading.Condition(), [0, 0]))
        c, state = cond  # state: [shared holders, exclusive holder]
        with c:
            while state[1] or (not shared and state[0]):
                c.wait()
            state[0 if shared else 1] += 1
        try:
            yield
        finally:
            with c:
                state[0 if shared else 1] -= 1
                c.notify_all()


class _MemTemp:
    def __init__(self, drives: MemoryDrives, root: Path) -> None:
        self.drives, self.root = drives, root
        self.path = root / "tmp" / f"{uuid.uuid4().hex}.tmp"
        self.buf = bytearray()
        drives.files[self.path] = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        cap = self.drives.capacity
        if cap is not None and self.drives._used(self.root) + len(self.buf) + len(data) > cap:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.buf += data

    def space(self) -> memoryview | None:
        return None  # ``write`` only

    def filled(self, n: int) -> None:
        raise AssertionError("space() lent nothing")

    def fsync(self) -> None:
        with self.drives._lock:
            self.drives.files[self.path] = bytes(self.buf)

    def commit(self, dest_dir: Path, name: str) -> None:
        with self.drives._lock:
            self.drives.files.pop(self.path, None)
            self.drives.files[dest_dir / name] = bytes(self.buf)

    def abort(self) -> None:
        with self.drives._lock:
            self.drives.files.pop(self.path, None)


class _MemReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def read_at(self, offset: int, n: int) -> bytes:
        return self.data[offset : offset + n]

    def close(self) -> None:
        return None
