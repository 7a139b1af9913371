"""Pure Python/numpy twins of ``_native/lookup.pyx`` (same results, bit for bit).

Used when the extension is not built or ``RINGSTACK_PUREPYTHON=1``; the
hypothesis suite compares each twin with its kernel. Partition hashing goes
through ``ring.hashing`` (the single definition) so the twin cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ring.hashing import partition_of_path

Name = Any  # bytes | str | tuple[str, str | None, str | None]


def _fast_path(item: Name) -> bytes | None:
    """The kernel's fast path: what it hashes without calling ``fallback``."""
    if type(item) is bytes:
        return item
    if type(item) is str:
        try:
            return item.encode("utf-8")
        except UnicodeEncodeError:
            return None
    if type(item) is tuple and 1 <= len(item) <= 3:
        parts: list[bytes] = []
        for k, piece in enumerate(item):
            if piece is None:
                if any(rest is not None for rest in item[k + 1 :]):
                    return None
                break
            if type(piece) is not str:
                return None
            try:
                parts.append(piece.encode("utf-8"))
            except UnicodeEncodeError:
                return None
        if parts:
            return b"".join(b"/" + p for p in parts)
    return None


def partitions_bulk(
    names: list[Name], part_power: int, seed: int, fallback: Callable[[Name], bytes]
) -> npt.NDArray[np.int64]:
    if not 0 <= part_power <= 32:
        raise ValueError(f"part_power {part_power} out of range 0..32")
    seed &= 0xFFFFFFFFFFFFFFFF
    out = np.empty(len(names), dtype=np.int64)
    for i, item in enumerate(names):
        path = _fast_path(item)
        if path is None:
            path = fallback(item)
        out[i] = partition_of_path(path, part_power, seed)
    return out


def primaries_bulk(table: npt.NDArray[np.int32], parts: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    parts = np.asarray(parts, dtype=np.int64)
    if parts.size and (parts.min() < 0 or parts.max() >= table.shape[1]):
        raise IndexError("partition out of range")
    return np.ascontiguousarray(table[:, parts].T, dtype=np.int32)


def handoff_order(
    table: npt.NDArray[np.int32],
    dev_region: npt.NDArray[np.int32],
    dev_zone: npt.NDArray[np.int32],
    dev_host: npt.NDArray[np.int32],
    candidates: npt.NDArray[np.int32],
    part: int,
    start: int,
    inc: int,
) -> npt.NDArray[np.int32]:
    """See the kernel: walk, first appearances, then region/zone/host/device passes."""
    nparts = table.shape[1]
    if not 0 <= part < nparts:
        raise IndexError(f"partition {part} out of range")
    if inc < 1 or not 0 <= start < nparts:
        raise ValueError("bad walk start/inc")
    steps = -(-nparts // inc)
    walk = (start + np.arange(steps, dtype=np.int64) * inc) % nparts
    seq = table[:, walk].T.ravel()
    seq = seq[seq >= 0]
    _, first = np.unique(seq, return_index=True)
    order: list[int] = seq[np.sort(first)].tolist()
    listed = set(order)
    order += [int(d) for d in candidates.tolist() if d not in listed]
    region, zone, host = dev_region.tolist(), dev_zone.tolist(), dev_host.tolist()
    used_dev: set[int] = set()
    used: tuple[set[int], set[int], set[int]] = (set(), set(), set())
    tiers: Sequence[list[int]] = (region, zone, host)

    def take(d: int) -> None:
        used_dev.add(d)
        for tier, seen in zip(tiers, used, strict=True):
            seen.add(tier[d])

    for d in table[:, part].tolist():
        if d >= 0:
            take(d)
    out: list[int] = []
    for pas in range(4):
        for d in order:
            if d in used_dev or (pas < 3 and tiers[pas][d] in used[pas]):
                continue
            take(d)
            out.append(d)
    return np.array(out, dtype=np.int32)
