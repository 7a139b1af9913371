"""Process memory policy: keep freed heap memory for reuse (glibc ``mallopt``),
and pools of large I/O buffers (``BufferPool``).

Why: a large PUT or GET moves bodies through 256 KiB receives, 1 MiB write
batches and joined node sends. glibc serves such blocks with ``mmap`` (or
trims them off the heap top) and gives them back on ``free``, so the next
block is fresh memory: every 4 KiB page faults in again and is zeroed. On a
virtual machine that returns freed pages to its host (virtio-balloon free
page reporting, as on the development machine) a fresh page costs ~3 us, so
building a 4 MiB body from 256 KiB pieces cost 6.9 ms of CPU against 0.6 ms
with reused memory (``ringstack bench memory``; RESULTS.md). Raising the mmap and
trim thresholds makes glibc keep freed blocks on the heap and hand the same,
already mapped pages out again.

Cost: a process keeps up to ``TRIM_KEEP`` bytes of freed heap instead of
returning it; its resident size is its high-water mark, which invariant 4
keeps flat in object size. ``RINGSTACK_MALLOC_TUNING=0`` turns it off (for
comparisons); on a libc without ``mallopt`` it does nothing.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_ABOVE = 32 << 20  # blocks from this size up still get their own mapping
TRIM_KEEP = 64 << 20  # free heap kept before it is returned to the system (bounds the RSS it adds)

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the policy once per process; True when glibc took it."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("RINGSTACK_MALLOC_TUNING", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: libc is linked in
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_KEEP))
    return _applied


class BufferPool:
    """Large I/O buffers of ``size`` bytes, reused: a fresh mapping faults in
    (and zeroes) every page again, ~3 us a page here (see above). Each is an
    anonymous ``mmap``: page-aligned (what ``O_DIRECT`` needs), and its pages
    go back to the system as soon as it is dropped. At most ``keep`` stay
    between uses, which bounds what the pool adds to the resident size; the
    rest are dropped (not closed: a caller may still hold a view)."""

    def __init__(self, size: int, keep: int) -> None:
        self.size = size
        self._keep = keep
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, self.size)

    def give(self, buf: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buf)

    @property
    def idle(self) -> int:
        return len(self._free)
