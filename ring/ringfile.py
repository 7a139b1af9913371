"""The ring file: what a built ring looks like on disk.

A ring file is what proxies, storage nodes and replicators load; the builder
file (inventory + builder state) stays with the operator. Layout, all integers
little-endian::

    magic      8 bytes   b"RSTKRING"
    version    u16       FORMAT_VERSION
    reserved   u16       0
    meta_len   u32       length of the JSON metadata
    meta       meta_len  UTF-8 JSON: part_power, replicas, created_at, dtype,
                         devices (list indexed by id, null for a hole)
    padding    0..7      zero bytes so the array starts 8-byte aligned
    array      replicas * 2**part_power * itemsize bytes, C order
                         [replica][partition] -> device id (-1: no device)
    checksum   32 bytes  BLAKE3 of every byte before it

Contract:

- ``write_ring`` is atomic: it writes a temp file in the same directory,
  fsyncs it, renames it over ``path`` and fsyncs the directory. A reader sees
  the old file or the new one, never a torn one; a crash leaves at most a
  stray ``.tmp`` file.
- ``read_ring`` refuses a file with a bad magic, an unknown version, a wrong
  checksum, or a table that names devices that do not exist, with
  ``RingFileError`` carrying a one-line message. It never returns a partial
  ring.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ring._framed import CHECKSUM_LEN, atomic_write, frame, unframe

MAGIC = b"RSTKRING"
FORMAT_VERSION = 1
MAX_PART_POWER = 32
NO_DEVICE = -1


class RingFileError(ValueError):
    """A ring file that cannot be used (missing, torn, corrupt, or from the future)."""

    status = 500


@dataclass(frozen=True, slots=True)
class RingDevice:
    """One drive as the ring sees it: where it is and what it weighs.

    ``host`` is the inventory's host name; ``address``/``port`` is where its
    storage server listens; ``device`` is the mount name (``sdb``).
    """

    id: int
    host: str
    region: int
    zone: int
    address: str
    port: int
    device: str
    weight: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "region": self.region,
            "zone": self.zone,
            "address": self.address,
            "port": self.port,
            "device": self.device,
            "weight": self.weight,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RingDevice:
        return cls(
            id=int(d["id"]),
            host=str(d["host"]),
            region=int(d["region"]),
            zone=int(d["zone"]),
            address=str(d["address"]),
            port=int(d["port"]),
            device=str(d["device"]),
            weight=float(d["weight"]),
        )


@dataclass(frozen=True, slots=True)
class RingData:
    """A built ring: the replica table and the devices it points at.

    ``replica2part2dev`` is an int32 array of shape ``(replicas, 2**part_power)``;
    ``devices[i]`` is the device with id ``i`` or ``None`` for a removed id.
    ``created_at`` is wall-clock seconds (informational only).
    """

    part_power: int
    replicas: int
    replica2part2dev: npt.NDArray[np.int32] = field(compare=False)
    devices: tuple[RingDevice | None, ...]
    created_at: float = 0.0

    @property
    def partitions(self) -> int:
        return 1 << self.part_power

    def validate(self) -> None:
        """Raise ``RingFileError`` unless the table and the devices agree."""
        if not 0 <= self.part_power <= MAX_PART_POWER:
            raise RingFileError(f"part_power {self.part_power} out of range 0..{MAX_PART_POWER}")
        if self.replicas < 1:
            raise RingFileError(f"replicas must be >= 1, got {self.replicas}")
        table = self.replica2part2dev
        if table.shape != (self.replicas, self.partitions):
            raise RingFileError(
                f"replica table has shape {table.shape}, expected ({self.replicas}, {self.partitions})"
            )
        for i, dev in enumerate(self.devices):
            if dev is not None and dev.id != i:
                raise RingFileError(f"device at index {i} has id {dev.id}")
        if table.size:
            lo, hi = int(table.min()), int(table.max())
            if lo < NO_DEVICE or hi >= len(self.devices):
                raise RingFileError(f"replica table names device ids outside 0..{len(self.devices) - 1}")
            present = np.array([d is not None for d in self.devices] + [True], dtype=bool)
            # index -1 maps to the trailing True: "no device" is allowed
            if not present[table].all():
                raise RingFileError("replica table names a removed device")

    def same_as(self, other: RingData) -> bool:
        """Equal content (the dataclass ``==`` skips the array)."""
        return (
            self == other
            and self.replica2part2dev.shape == other.replica2part2dev.shape
            and bool(np.array_equal(self.replica2part2dev, other.replica2part2dev))
        )


def _encode(data: RingData) -> bytes:
    data.validate()
    table = np.ascontiguousarray(data.replica2part2dev, dtype="<i4")
    meta = {
        "part_power": data.part_power,
        "replicas": data.replicas,
        "created_at": data.created_at,
        "dtype": "<i4",
        "devices": [None if d is None else d.to_json() for d in data.devices],
    }
    return frame(MAGIC, FORMAT_VERSION, meta, [table.tobytes()])


def write_ring(path: str | os.PathLike[str], data: RingData) -> bytes:
    """Atomically write ``data`` to ``path``; return the file's checksum."""
    blob = _encode(data)
    atomic_write(path, blob)
    return blob[-CHECKSUM_LEN:]


def decode_ring(blob: bytes, name: str = "ring file") -> tuple[RingData, bytes]:
    """Parse a ring file's bytes; return the ring and its checksum."""
    meta, body, start = unframe(blob, MAGIC, FORMAT_VERSION, RingFileError, name, "ring file")
    checksum = blob[-CHECKSUM_LEN:]
    try:
        part_power = int(meta["part_power"])
        replicas = int(meta["replicas"])
        devices = tuple(None if d is None else RingDevice.from_json(d) for d in meta["devices"])
        dtype = np.dtype(meta.get("dtype", "<i4"))
        created_at = float(meta.get("created_at", 0.0))
    except (ValueError, KeyError, TypeError) as exc:
        raise RingFileError(f"{name}: bad metadata ({exc})") from None
    if not 0 <= part_power <= MAX_PART_POWER or replicas < 1:
        raise RingFileError(f"{name}: bad metadata (part_power {part_power}, replicas {replicas})")
    count = replicas << part_power
    if not 0 <= len(body) - start - count * dtype.itemsize < 8:  # the table, padded to 8
        raise RingFileError(f"{name}: replica table has {len(body) - start} bytes, expected {count * dtype.itemsize}")
    table = np.frombuffer(body, dtype=dtype, count=count, offset=start).astype(np.int32)
    data = RingData(part_power, replicas, table.reshape(replicas, 1 << part_power), devices, created_at)
    try:
        data.validate()
    except RingFileError as exc:
        raise RingFileError(f"{name}: {exc}") from None
    return data, checksum


def read_ring(path: str | os.PathLike[str]) -> RingData:
    """Load and verify a ring file (see the module contract)."""
    return read_ring_with_checksum(path)[0]


def read_ring_with_checksum(path: str | os.PathLike[str]) -> tuple[RingData, bytes]:
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as exc:
        raise RingFileError(f"cannot read ring file {os.fspath(path)}: {exc.strerror or exc}") from None
    return decode_ring(blob, os.fspath(path))
