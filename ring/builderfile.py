"""The cluster builder file: inventory, change history and the three rings' builders.

One file per cluster, kept by the operator (the ring files made from it go
to the servers). Layout, integers little-endian::

    magic      8 bytes   b"RSTKBLDR"
    version    u16       FORMAT_VERSION
    reserved   u16       0
    meta_len   u32       length of the JSON metadata
    meta       meta_len  UTF-8 JSON: {"inventory": ..., "rings": {name: {"params": ...,
                         "arrays": {name: {"offset", "dtype", "shape"}}}}}
    padding    zero bytes so each array starts 8-byte aligned
    arrays     raw C-order arrays (replica2part2dev int32, last_moved float64)
    checksum   32 bytes  BLAKE3 of every byte before it

Contract:

- ``save`` is atomic: temp file in the same directory, fsync, rename over
  the target, fsync the directory. A crash leaves the old file or the new
  one, never a torn one (and at most a stray ``.tmp``).
- ``load`` refuses a short file, a bad magic, an unknown version or a wrong
  checksum with :class:`BuilderFileError` (one-line message) and never
  returns a partial builder. Loading a part-power-20 ring costs one read,
  one hash and one copy of each array.
- Ring names are ``account``, ``container``, ``object`` (and ``object-N`` for
  further storage policies).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ring._framed import atomic_write, frame, unframe
from ring.builder import RebalanceReport, RingBuilder
from ring.inventory import Inventory, InventoryError
from ring.ringfile import RingData, RingDevice

MAGIC = b"RSTKBLDR"
FORMAT_VERSION = 1
RING_NAMES = ("object", "container", "account")
_NAME_RE = re.compile(r"^(account|container|object(-[0-9]+)?)$")


class BuilderFileError(ValueError):
    """A builder file that cannot be used (missing, torn, corrupt, from the future)."""

    status = 500


class ClusterBuilder:
    """The inventory plus one :class:`RingBuilder` per ring name."""

    def __init__(self, inventory: Inventory | None = None,
                 rings: dict[str, RingBuilder] | None = None) -> None:
        self.inventory = inventory if inventory is not None else Inventory()
        self.rings: dict[str, RingBuilder] = {}
        for name, builder in (rings or {}).items():
            self.add_ring(name, builder)

    @classmethod
    def create(cls, part_power: int, replicas: int = 3, min_part_hours: float = 1,
               overload: float = 0.0, seed: int = 0,
               inventory: Inventory | None = None) -> ClusterBuilder:
        """A cluster with the object, container and account rings sharing these parameters."""
        rings = {name: RingBuilder(part_power, replicas, min_part_hours, overload, seed)
                 for name in RING_NAMES}
        return cls(inventory, rings)

    def add_ring(self, name: str, builder: RingBuilder) -> None:
        if not _NAME_RE.match(name):
            raise BuilderFileError(f"bad ring name {name!r} (account, container, object[-N])")
        self.rings[name] = builder

    def ring(self, name: str) -> RingBuilder:
        try:
            return self.rings[name]
        except KeyError:
            raise BuilderFileError(f"no ring named {name!r} in this builder") from None

    def rebalance(self, name: str, now: float,
                  progress: Callable[[float], None] | None = None) -> RebalanceReport:
        """Rebalance one ring against the inventory and record it in the history."""
        report = self.ring(name).rebalance(self.inventory, now, progress)
        self.inventory.record("rebalance", {
            "ring": name, "moved": report.moved, "balance": round(report.balance, 4),
            "dispersion": round(report.dispersion, 4)}, now)
        return report

    def ring_data(self, name: str) -> RingData:
        """What ``ring.ringfile.write_ring`` needs for ring ``name``.

        The builder is validated first; ``created_at`` is the ``now`` of its
        last rebalance. ``devices`` is indexed by drive id, ``None`` for ids
        that were removed (ids are never reused).
        """
        builder = self.ring(name)
        if not builder.ever_rebalanced():
            raise BuilderFileError(f"ring {name!r} was never rebalanced")
        builder.validate(self.inventory)
        inv = self.inventory
        size = max(inv.next_drive_id, int(builder.replica2part2dev.max(initial=-1)) + 1)
        devices: list[RingDevice | None] = [None] * size
        for d in inv.drives.values():
            h = inv.hosts[d.host]
            devices[d.id] = RingDevice(d.id, h.name, h.region, h.zone, h.address, h.port,
                                       d.device, d.weight)
        return RingData(builder.part_power, builder.replicas,
                        builder.replica2part2dev.copy(), tuple(devices),
                        float(builder.last_rebalance_at or 0.0))

    # -- bytes ---------------------------------------------------------------

    def to_bytes(self) -> bytes:
        arrays: list[np.ndarray] = []
        rings_meta: dict[str, Any] = {}
        for name, b in self.rings.items():
            entry: dict[str, Any] = {"params": b.params(), "arrays": {}}
            for aname, arr, dtype in (("replica2part2dev", b.replica2part2dev, "<i4"),
                                      ("last_moved", b.last_moved, "<f8")):
                entry["arrays"][aname] = {"index": len(arrays), "dtype": dtype,
                                          "shape": list(arr.shape)}
                arrays.append(np.ascontiguousarray(arr, dtype=dtype))
            rings_meta[name] = entry
        # offsets depend on the header length; compute them relative to the data start
        offset = 0
        for entry in rings_meta.values():
            for spec in entry["arrays"].values():
                spec["offset"] = offset
                offset += arrays[spec.pop("index")].nbytes
                offset += -offset % 8
        meta = {"inventory": self.inventory.to_dict(), "rings": rings_meta}
        return frame(MAGIC, FORMAT_VERSION, meta, [a.tobytes() for a in arrays])

    @classmethod
    def from_bytes(cls, blob: bytes, name: str = "builder file") -> ClusterBuilder:
        meta, body, data_start = unframe(blob, MAGIC, FORMAT_VERSION, BuilderFileError, name, "builder file")
        try:
            inventory = Inventory.from_dict(meta["inventory"])
            rings: dict[str, RingBuilder] = {}
            for rname, entry in meta["rings"].items():
                arrs = {}
                for aname, spec in entry["arrays"].items():
                    shape = tuple(int(s) for s in spec["shape"])
                    count = int(np.prod(shape)) if shape else 1
                    start = data_start + int(spec["offset"])
                    dt = np.dtype(spec["dtype"])
                    if start + count * dt.itemsize > len(body):
                        raise BuilderFileError(f"{name}: array {aname} runs past the end")
                    arrs[aname] = np.frombuffer(body, dt, count, start).reshape(shape).copy()
                rings[rname] = RingBuilder.from_state(
                    entry["params"], arrs["replica2part2dev"], arrs["last_moved"])
        except BuilderFileError:
            raise
        except (ValueError, KeyError, TypeError, InventoryError) as exc:
            raise BuilderFileError(f"{name}: malformed content ({exc})") from None
        return cls(inventory, rings)

    # -- files ---------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically replace ``path`` with this builder (see module docstring)."""
        atomic_write(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClusterBuilder:
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except OSError as exc:
            raise BuilderFileError(f"{os.fspath(path)}: cannot read ({exc.strerror})") from None
        return cls.from_bytes(blob, os.fspath(path))
