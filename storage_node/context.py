"""``NodeContext``: what every server in the storage process shares.

Built once by ``serve_storage`` and passed to each handler
(``object_server.handle``, ``container_server.handle(request, ctx)``,
``account_server.handle(request, ctx)``, ``replicate.handle``). Contract for
the handlers:

- ``await ctx.run(drive, fn, *args)``: run blocking ``fn`` in one of that
  drive's worker threads (``common.threadpool.ThreadPool``, at most
  ``threads_per_drive``; one slow drive stalls only itself).
  Inside ``fn`` call ``ctx.check_drive(drive)`` first: it raises
  ``DriveUnavailable`` (507) when the drive directory is missing or, with
  ``mount_check``, not a mount point.
- ``ctx.env(drive)``: the drive's LMDB environment (``<drive>/index.lmdb``,
  ``max_dbs=64``), opened once per process; open your own named
  sub-databases in it with ``storage_node.index.open_db(env, b"name")``,
  never a bare ``env.open_db(name)``: that waits for LMDB's writer lock
  holding the GIL and deadlocks the process while the group committer
  writes (measured; see ``index.open_db``). The object side
  uses ``objects``, ``suffixes``, ``async_pending``). Call it from a thread
  (it may create the directory). ``ctx.committer(drive)`` batches write
  transactions across concurrent requests (group commit, see ``index``).
- ``ctx.clock()``: wall-clock seconds (injected; expiry and reclaim use it).
  ``ctx.hash_secret`` for ``ring.hashing``; ``ctx.http`` the shared pooled
  client for container/account updates; ``ctx.logger`` for ``log_event``.
- ``ctx.drive_layer``: the object side's file operations (``drive``).
Handlers raise ``DriveUnavailable`` / ``common.http.HTTPError`` or return a
``Response``; the server maps ``DriveUnavailable`` and ``OSError(ENOSPC)`` to
507 for that drive only.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from common.http import HTTPClient
from common.threadpool import ThreadPool
from storage_node.drive import DIRECT_MIN, DiskDrives, DriveLayer, DriveUnavailable
from storage_node.index import DriveIndex, GroupCommitter, open_env

T = TypeVar("T")
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """The ``[storage]`` section, as the object side uses it."""

    mount_check: bool = False
    threads_per_drive: int = 16  # also bounds a group-commit round
    group_commit: bool = True
    container_update_timeout: float = 1.0
    client_timeout: float = 60.0  # a body that stalls this long -> 408 (Swift's client_timeout)
    reclaim_age: float = 7 * 86400.0
    index_map_size: int = 8 << 30
    auditor_bytes_per_second: float = 0.0  # 0: no auditor task in the server
    auditor_interval: float = 3600.0
    max_object_size: int = (5 << 30) + 2  # Swift's MAX_FILE_SIZE, as the proxy's max_file_size (tests.py testFileSizeLimit)
    reserve_bytes: int = 16 << 20  # PUTs get 507 below this much free space; deletes and POSTs still work
    direct_io: bool = True  # bodies over 1 MiB (or of unknown size) bypass the page cache (drive.py _DiskTemp)
    index_root: str = ""  # LMDB at <index_root>/<drive>/ instead of <drive>/ (in-memory drive layer)
    fault_injection: bool = False  # sentinel-file faults on the real drives (drive.py docstring; fault tests only)

    def direct_for(self, size: int | None) -> bool:
        """Whether a file of ``size`` bytes (None: unknown) bypasses the page cache."""
        return self.direct_io and (size is None or size > DIRECT_MIN)


@dataclass(frozen=True, slots=True)
class NodeContext:
    drives: Mapping[str, Path]
    pools: Mapping[str, ThreadPool]
    clock: Callable[[], float]
    hash_secret: str
    http: HTTPClient
    logger: logging.Logger
    settings: StorageSettings = StorageSettings()
    drive_layer: DriveLayer = field(default_factory=DiskDrives)
    committers: dict[str, GroupCommitter] = field(default_factory=dict)
    indexes: dict[str, DriveIndex] = field(default_factory=dict)
    ring_dir: str = ""  # the cluster's ring dir: replication requests check X-Backend-Ring-Version against it

    def root(self, drive: str) -> Path:
        """The drive's directory; ``DriveUnavailable`` if not configured."""
        root = self.drives.get(drive)
        if root is None:
            raise DriveUnavailable(f"drive {drive!r} is not configured on this node")
        return root

    def check_drive(self, drive: str) -> Path:
        """(thread) The drive's root after the missing/mount checks."""
        root = self.root(drive)
        self.drive_layer.check(root, self.settings.mount_check)
        return root

    def env(self, drive: str) -> lmdb.Environment:
        """(thread) The drive's LMDB environment."""
        base = self._index_base(drive)
        try:
            return open_env(base, self.settings.index_map_size)
        except lmdb.Error as exc:
            raise DriveUnavailable(f"drive {drive!r}: cannot open its index: {exc}") from exc

    def _index_base(self, drive: str) -> Path:
        root = self.check_drive(drive)
        if not self.settings.index_root:
            return root
        base = Path(self.settings.index_root) / drive
        base.mkdir(parents=True, exist_ok=True)
        return base

    def index(self, drive: str) -> DriveIndex:
        """(thread) The object index of the drive (cached)."""
        idx = self.indexes.get(drive)
        if idx is None:
            idx = self.indexes.setdefault(drive, DriveIndex(self.env(drive)))
        return idx

    def committer(self, drive: str) -> GroupCommitter:
        """The drive's group committer (``await .commit(ops)`` from the event
        loop, ``.commit_sync(ops)`` from a worker thread); the env must be
        open (call ``ctx.env`` or ``ctx.index`` in a thread first)."""
        c = self.committers.get(drive)
        if c is None:
            base = Path(self.settings.index_root) / drive if self.settings.index_root else self.root(drive)
            env = open_env(base, self.settings.index_map_size)
            c = self.committers.setdefault(
                drive, GroupCommitter(env, self.pools[drive], self.settings.group_commit))
        return c

    async def run(self, drive: str, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` in one of the drive's threads;
        disk-full style ``OSError``s become ``DriveUnavailable``."""
        pool = self.pools.get(drive)
        if pool is None:
            raise DriveUnavailable(f"drive {drive!r} is not configured on this node")
        with drive_errors(drive):
            return await pool.run(fn, *args)


@contextmanager
def drive_errors(drive: str) -> Iterator[None]:
    """Disk-full style ``OSError``s raised inside become ``DriveUnavailable`` (507)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            raise DriveUnavailable(f"drive {drive!r}: {exc.strerror}") from exc
        raise


def make_pools(drives: Mapping[str, Path], per_drive: int) -> dict[str, ThreadPool]:
    return {name: ThreadPool(per_drive, f"drive-{name}") for name in drives}
