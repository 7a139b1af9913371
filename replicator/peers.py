"""Who a replicator talks to: drives as peers, and which node is this one.

Shared by the object and the database replicators' cores (sans-I/O).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol


class DeviceLike(Protocol):
    """What the cores need of a ring device (``ring.RingDevice`` fits)."""

    @property
    def id(self) -> int: ...
    @property
    def address(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def device(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Peer:
    """A drive on some node, as the replicator addresses it. Two peers are
    the same drive when address, port and device name match (``dev_id`` is
    informational)."""

    address: str
    port: int
    device: str
    dev_id: int = field(default=-1, compare=False)

    @property
    def label(self) -> str:
        return f"{self.address}:{self.port}/{self.device}"

    @classmethod
    def of(cls, dev: DeviceLike) -> Peer:
        return cls(dev.address, dev.port, dev.device, dev.id)


def local_node(devices: Iterable[DeviceLike | None], drives: Iterable[str]) -> tuple[str, int]:
    """The node (address, port) whose ring devices carry these drive names.

    Raises ``ValueError`` when no device matches or the names are ambiguous
    (e.g. ``sdb`` on every host): pass ``--node HOST:PORT`` then."""
    names = set(drives)
    nodes = {(d.address, d.port) for d in devices if d is not None and d.device in names}
    if len(nodes) != 1:
        found = ", ".join(f"{a}:{p}" for a, p in sorted(nodes)) or "none"
        raise ValueError(f"drives {sorted(names)} match nodes in the ring: {found}; pass --node HOST:PORT")
    return nodes.pop()
