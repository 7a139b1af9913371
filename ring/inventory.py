"""The host/drive inventory shared by the ring builder and the scheduler.

Contract:

- Hosts are named failure domains inside a zone inside a region (tiers
  region > zone > host > drive, as in Swift). A host may also carry compute
  capacity (vcpus, memory_mb, disk_gb) for the scheduler.
- Drive ids are allocated by the inventory and are never reused, not even
  after a removal: a ring that still names an old id must never be read as
  naming a new drive (invariant 8 relies on the builder knowing which
  replicas sit on removed drives).
- Every change is appended to ``history`` (time, action, details) so an
  operator can see who drained what and when. The time comes from the
  caller (``now``) or from the injected ``clock``; this module never reads
  the real clock itself unless no clock is injected.
- Bad input raises :class:`InventoryError` and leaves the inventory
  unchanged (no partial state).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

INVENTORY_FORMAT = 1


class InventoryError(ValueError):
    """A change the inventory refuses (unknown drive/host, duplicate, bad weight)."""

    status = 400


@dataclass(frozen=True, slots=True)
class Host:
    """A server: one failure domain below its zone."""

    name: str
    region: int
    zone: int
    address: str
    port: int
    vcpus: int | None = None
    memory_mb: int | None = None
    disk_gb: int | None = None


@dataclass(frozen=True, slots=True)
class Drive:
    """One drive on a host. ``weight`` 0 means "drain me"."""

    id: int
    host: str
    device: str
    weight: float
    meta: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change history."""

    time: float
    action: str
    details: dict[str, Any] = field(default_factory=dict)


def _check_weight(weight: float) -> float:
    try:
        w = float(weight)
    except (TypeError, ValueError):
        raise InventoryError(f"weight must be a number, not {weight!r}") from None
    if not math.isfinite(w) or w < 0:
        raise InventoryError(f"weight must be a finite number >= 0, not {weight!r}")
    return w


def _check_int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InventoryError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


class Inventory:
    """Hosts and drives, with a change history.

    ``hosts`` maps host name to :class:`Host`; ``drives`` maps drive id to
    :class:`Drive` (removed drives are gone from it; their ids stay burnt).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.hosts: dict[str, Host] = {}
        self.drives: dict[int, Drive] = {}
        self.history: list[Change] = []
        self.next_drive_id = 0
        self._clock = clock

    # -- queries -------------------------------------------------------------

    def drive(self, drive_id: int) -> Drive:
        try:
            return self.drives[drive_id]
        except KeyError:
            raise InventoryError(f"unknown drive id {drive_id}") from None

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise InventoryError(f"unknown host {name!r}") from None

    def drives_of(self, host: str) -> Iterator[Drive]:
        return (d for d in self.drives.values() if d.host == host)

    def find_drive(self, host: str, device: str) -> Drive | None:
        for d in self.drives.values():
            if d.host == host and d.device == device:
                return d
        return None

    def total_weight(self) -> float:
        return sum(d.weight for d in self.drives.values())

    # -- changes -------------------------------------------------------------

    def _record(self, action: str, details: dict[str, Any], now: float | None) -> None:
        self.history.append(Change(self._clock() if now is None else float(now), action, details))

    def record(self, action: str, details: dict[str, Any], now: float | None = None) -> None:
        """Append a history entry for a change made elsewhere (e.g. a rebalance)."""
        self._record(action, dict(details), now)

    def add_host(self, host: Host, now: float | None = None) -> Host:
        if not isinstance(host.name, str) or not host.name:
            raise InventoryError("a host needs a non-empty name")
        if host.name in self.hosts:
            raise InventoryError(f"host {host.name!r} already exists")
        _check_int("region", host.region)
        _check_int("zone", host.zone)
        _check_int("port", host.port)
        if host.port > 65535:
            raise InventoryError(f"port must be <= 65535, not {host.port}")
        if not isinstance(host.address, str) or not host.address:
            raise InventoryError("a host needs an address")
        for name in ("vcpus", "memory_mb", "disk_gb"):
            value = getattr(host, name)
            if value is not None:
                _check_int(name, value)
        self.hosts[host.name] = host
        self._record("add_host", asdict(host), now)
        return host

    def remove_host(self, name: str, now: float | None = None) -> Host:
        host = self.host(name)
        if any(True for _ in self.drives_of(name)):
            raise InventoryError(f"host {name!r} still has drives; remove them first")
        del self.hosts[name]
        self._record("remove_host", {"name": name}, now)
        return host

    def add_drive(
        self, host: str, device: str, weight: float, meta: str = "", now: float | None = None
    ) -> Drive:
        """Add a drive and return it with its new, never reused id."""
        self.host(host)
        if not isinstance(device, str) or not device or "/" in device:
            raise InventoryError(f"bad device name {device!r}")
        w = _check_weight(weight)
        if self.find_drive(host, device) is not None:
            raise InventoryError(f"drive {host}/{device} already exists")
        drive = Drive(self.next_drive_id, host, device, w, str(meta))
        self.next_drive_id += 1
        self.drives[drive.id] = drive
        self._record("add_drive", asdict(drive), now)
        return drive

    def remove_drive(self, drive_id: int, now: float | None = None) -> Drive:
        """Forget a drive; the next rebalance moves its replicas elsewhere."""
        drive = self.drive(drive_id)
        del self.drives[drive_id]
        self._record("remove_drive", {"id": drive_id, "host": drive.host, "device": drive.device}, now)
        return drive

    def set_weight(self, drive_id: int, weight: float, now: float | None = None) -> Drive:
        drive = self.drive(drive_id)
        w = _check_weight(weight)
        new = Drive(drive.id, drive.host, drive.device, w, drive.meta)
        self.drives[drive_id] = new
        self._record("set_weight", {"id": drive_id, "old": drive.weight, "new": w}, now)
        return new

    # -- persistence ---------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form; :meth:`from_dict` reads it back exactly."""
        return {
            "format": INVENTORY_FORMAT,
            "next_drive_id": self.next_drive_id,
            "hosts": [asdict(h) for h in self.hosts.values()],
            "drives": [asdict(d) for d in sorted(self.drives.values(), key=lambda d: d.id)],
            "history": [asdict(c) for c in self.history],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], clock: Callable[[], float] = time.time) -> Inventory:
        try:
            if data.get("format") != INVENTORY_FORMAT:
                raise InventoryError(f"unsupported inventory format {data.get('format')!r}")
            inv = cls(clock)
            for h in data["hosts"]:
                host = Host(**h)
                inv.hosts[host.name] = host
            for d in data["drives"]:
                drive = Drive(**d)
                if drive.host not in inv.hosts or drive.id in inv.drives:
                    raise InventoryError(f"inconsistent drive record {d!r}")
                inv.drives[drive.id] = drive
            inv.next_drive_id = int(data["next_drive_id"])
            if inv.drives and max(inv.drives) >= inv.next_drive_id:
                raise InventoryError("next_drive_id would reuse an id")
            inv.history = [Change(float(c["time"]), c["action"], dict(c["details"])) for c in data["history"]]
        except (KeyError, TypeError) as exc:
            raise InventoryError(f"malformed inventory: {exc!r}") from None
        return inv

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Inventory):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]
