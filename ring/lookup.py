"""Ring lookups: name -> partition -> primaries, handoffs, and bulk forms.

``Ring`` wraps a ring file. Contract:

- ``get_nodes(a, c, o)`` returns ``(partition, primaries)`` where the
  partition is ``ring.hashing.partition_of_path`` of the name (the single
  definition) and primaries are the devices of the replica table's column, in
  replica order. Per-partition device tuples are precomputed up to 2**18
  partitions (a lookup is one hash and one index); bigger rings index the
  table's rows directly (measured just as fast, without the memory).
- ``get_more_nodes(part)`` yields handoff devices in failure-domain-aware
  order: devices in a region no primary (nor earlier handoff) uses, then a new
  zone, then a new host, then any other device holding partitions; the order
  is deterministic per partition and spreads handoffs like Swift's walk over
  the replica table (so by weight).
- Reload: at most every ``reload_interval`` seconds of the injected ``clock``
  a lookup stats the file; a changed (mtime, size, inode) makes it re-read the
  file and swap in the new ring if its checksum differs. A new file that fails
  verification is not used: the old ring keeps serving and
  ``last_reload_error`` says why (a proxy keeps routing on a bad push).
- The bulk forms use the native kernels (``_native.lookup``) or their twins
  (``ring._lookup_twins``); ``RINGSTACK_PUREPYTHON=1`` forces the twins.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from ring import _lookup_twins
from ring.hashing import hash_seed, name_path, partition_of_path
from ring.ringfile import RingData, RingDevice, RingFileError, read_ring_with_checksum

EAGER_PARTITIONS = 1 << 18
_HANDOFF_SEED = 0x68616E646F666673  # b"handoffs"


def _select_kernels() -> tuple[ModuleType, str]:
    if os.environ.get("RINGSTACK_PUREPYTHON", "") not in ("", "0"):
        return _lookup_twins, "python"
    try:
        from _native import lookup as native
    except ImportError:
        print("ringstack: _native.lookup not built; using the pure-Python ring twins", file=sys.stderr)
        return _lookup_twins, "python"
    return native, "native"


kernels, KERNEL = _select_kernels()


def _fallback_path(item: Any) -> bytes:
    """Names the kernels' fast path does not take: surrogates, bytes-likes, odd tuples."""
    if isinstance(item, tuple):
        return name_path(*item)
    if isinstance(item, str):
        return item.encode("utf-8", "surrogatepass")
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    raise TypeError(f"cannot hash a name of type {type(item).__name__}")


class _State:
    """One loaded ring, swapped whole on reload (only ``stat`` is refreshed in place)."""

    __slots__ = (
        "data", "checksum", "stat", "shift", "devices", "part_nodes", "_ext",
        "table", "region", "zone", "host", "candidates", "has_holes", "rows", "three",
    )

    def __init__(self, data: RingData, checksum: bytes, stat: tuple[int, int, int] | None) -> None:
        self.data = data
        self.checksum = checksum
        self.stat = stat
        self.shift = 64 - data.part_power
        self.devices = data.devices
        self.table = np.ascontiguousarray(data.replica2part2dev, dtype=np.int32)
        self.has_holes = bool((self.table < 0).any()) if self.table.size else False
        self._ext: list[RingDevice | None] = [*data.devices, None]  # index -1 -> None
        n = len(data.devices)
        self.region = np.full(n, -1, dtype=np.int32)
        self.zone = np.full(n, -1, dtype=np.int32)
        self.host = np.full(n, -1, dtype=np.int32)
        tiers: tuple[dict[Any, int], dict[Any, int], dict[Any, int]] = ({}, {}, {})
        for dev in data.devices:
            if dev is None:
                continue
            keys = (dev.region, (dev.region, dev.zone), (dev.region, dev.zone, dev.host))
            for arr, index, key in zip((self.region, self.zone, self.host), tiers, keys, strict=True):
                arr[dev.id] = index.setdefault(key, len(index))
        # memoryviews index to Python ints without numpy scalar overhead (the direct path)
        self.rows = [memoryview(row) for row in self.table]
        present = self.table[self.table >= 0]
        self.candidates = np.unique(present).astype(np.int32)
        parts = data.partitions
        self.three = len(self.rows) == 3 and not self.has_holes
        self.part_nodes: list[tuple[RingDevice, ...]] | None = None
        if parts <= EAGER_PARTITIONS:
            rows = [map(self._ext.__getitem__, row.tolist()) for row in self.table]
            nodes: list[tuple[Any, ...]] = list(zip(*rows, strict=True))
            if self.has_holes:
                nodes = [tuple(d for d in t if d is not None) for t in nodes]
            self.part_nodes = nodes

    def direct(self, part: int) -> list[RingDevice]:
        """Primaries of ``part`` straight from the table (rings past the eager limit).

        Measured: about as fast as a precomputed tuple, with no cold-start cost
        and no per-partition memory, which a cache filled on first use had.
        """
        ext = self._ext
        if self.three:
            r0, r1, r2 = self.rows
            return [ext[r0[part]], ext[r1[part]], ext[r2[part]]]  # type: ignore[list-item]
        return [d for d in [ext[row[part]] for row in self.rows] if d is not None]


class Ring:
    """A loaded ring file that follows the file on disk (see module contract)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        hash_secret: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        reload_interval: float = 15.0,
        data: RingData | None = None,
    ) -> None:
        self._path = None if path is None else os.fspath(path)
        self._seed = hash_seed(hash_secret)
        self._clock = clock
        self.reload_interval = reload_interval
        self.last_reload_error: str | None = None
        if data is not None:
            self._state = _State(data, b"", None)
        elif self._path is None:
            raise ValueError("Ring needs a path or data")
        else:
            self._state = self._read()
        self._next_check = clock() + reload_interval

    @classmethod
    def from_data(cls, data: RingData, hash_secret: str) -> Ring:
        """A ring from memory (the builder's), never reloaded."""
        return cls(None, hash_secret, data=data, reload_interval=float("inf"))

    # ------------------------------------------------------------- reload
    def _stat(self) -> tuple[int, int, int]:
        assert self._path is not None
        st = os.stat(self._path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> _State:
        assert self._path is not None
        try:
            stat = self._stat()
        except OSError as exc:
            raise RingFileError(f"cannot read ring file {self._path}: {exc.strerror or exc}") from None
        data, checksum = read_ring_with_checksum(self._path)
        return _State(data, checksum, stat)

    def reload_if_changed(self) -> bool:
        """Check the file now; True when a new ring was swapped in."""
        self._next_check = self._clock() + self.reload_interval
        if self._path is None:
            return False
        try:
            if self._stat() == self._state.stat:
                return False
            state = self._read()
        except RingFileError as exc:
            self.last_reload_error = str(exc)
            return False
        self.last_reload_error = None
        if state.checksum == self._state.checksum:
            self._state.stat = state.stat
            return False
        self._state = state
        return True

    def _current(self) -> _State:
        if self._clock() >= self._next_check:
            self.reload_if_changed()
        return self._state

    # ------------------------------------------------------------- facts
    @property
    def data(self) -> RingData:
        return self._current().data

    @property
    def part_power(self) -> int:
        return self._current().data.part_power

    @property
    def partitions(self) -> int:
        return self._current().data.partitions

    @property
    def replicas(self) -> int:
        return self._current().data.replicas

    @property
    def devices(self) -> tuple[RingDevice | None, ...]:
        return self._current().devices

    @property
    def checksum(self) -> bytes:
        return self._state.checksum

    # ------------------------------------------------------------- lookups
    def get_part(self, account: str, container: str | None = None, obj: str | None = None) -> int:
        st = self._current()
        return partition_of_path(name_path(account, container, obj), st.data.part_power, self._seed)

    def get_nodes(
        self, account: str, container: str | None = None, obj: str | None = None
    ) -> tuple[int, list[RingDevice]]:
        """``(partition, primaries)`` of a name; primaries in replica order."""
        st = self._state if self._clock() < self._next_check else self._current()
        part = partition_of_path(name_path(account, container, obj), st.data.part_power, self._seed)
        table = st.part_nodes
        if table is not None:
            return part, list(table[part])
        return part, st.direct(part)

    def get_part_nodes(self, part: int) -> list[RingDevice]:
        st = self._current()
        if not 0 <= part < st.data.partitions:
            raise IndexError(f"partition {part} out of range 0..{st.data.partitions - 1}")
        table = st.part_nodes
        return list(table[part]) if table is not None else st.direct(part)

    def handoff_ids(self, part: int) -> npt.NDArray[np.int32]:
        """Device ids of ``part``'s handoffs, best first (the kernel's answer)."""
        st = self._current()
        pp = st.data.part_power
        parts = st.data.partitions
        if not 0 <= part < parts:
            raise IndexError(f"partition {part} out of range 0..{parts - 1}")
        start = partition_of_path(part.to_bytes(8, "little"), pp, _HANDOFF_SEED)
        inc = max(1, parts >> 16)
        return kernels.handoff_order(  # type: ignore[no-any-return]
            st.table, st.region, st.zone, st.host, st.candidates, part, start, inc
        )

    def get_more_nodes(self, part: int) -> Iterator[RingDevice]:
        """Handoff devices for ``part``, best first; finite (every device with partitions once)."""
        devices = self._current().devices
        for dev_id in self.handoff_ids(part).tolist():
            dev = devices[dev_id]
            if dev is not None:
                yield dev

    def get_parts_bulk(self, names: Iterable[Any]) -> npt.NDArray[np.int64]:
        """Partitions of many names (paths as bytes/str, or (a, c, o) tuples)."""
        st = self._current()
        batch = names if isinstance(names, list) else list(names)
        return kernels.partitions_bulk(batch, st.data.part_power, self._seed, _fallback_path)  # type: ignore[no-any-return]

    def get_nodes_bulk(self, names: Iterable[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]:
        """``(parts[n], device_ids[n][replicas])``; -1 marks a missing replica."""
        st = self._current()
        batch = names if isinstance(names, list) else list(names)
        parts = kernels.partitions_bulk(batch, st.data.part_power, self._seed, _fallback_path)
        return parts, kernels.primaries_bulk(st.table, parts)
