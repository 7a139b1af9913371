"""The object replicator's decisions, sans I/O (no trio, no clock, no disk).

Rules (DESIGN invariants 1 and 3; FAULTS.md 1, 4, 9, 10):

- **Role.** A partition held on a local drive is *primary* there when the
  current ring lists that very device (address, port, device) among the
  partition's primaries; otherwise the local copy is a *handoff* (written
  there during an outage, or left behind by a rebalance: a partition that is
  no longer ours is a handoff like any other).
- **Primary pass.** Compare the local suffix hashes with every other
  primary's; push (local -> peer) every suffix whose hash differs or that the
  peer lacks. Push only: a peer that is newer pushes to us from its own
  replicator (Swift's choice: every byte crosses the wire once per pass).
  A peer primary whose drive answers 507 is replaced by the partition's
  first usable handoff (as Swift), which reverts once the drive is back.
  A primary never drops its partition.
- **Handoff pass (revert).** Push the differing suffixes to *every* primary
  the ring names (never to another handoff), ask each to rehash them, and
  pull back from a primary whatever is still different afterwards (a newer
  version there makes our copy obsolete, so equal hashes prove that nothing
  local is lost). The partition is dropped only when *every* primary answered
  with hashes equal to ours for every local suffix, and the drop itself is
  checked again under the partition lock on the node (``DROP`` body =
  the confirmed hashes: invariant 3).
- **Ring versions.** Every replication request carries the replicator's ring
  checksum (``X-Backend-Ring-Version``); a storage node whose own ring
  differs answers 409 and the partition is skipped this pass. Two nodes on
  different ring versions thus never confirm each other's revert, so they
  never revert one partition to each other at once (FAULTS.md 9); the local
  ``DROP`` carries it too, so a node's server and replicator agree.
- **Bounded staleness.** Every ``rehash_interval`` passes a pass asks the
  local node to rehash every suffix it knows from disk before comparing, so
  a file lost behind the index is found within that many passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from replicator.peers import DeviceLike, Peer

RING_VERSION_HEADER = "X-Backend-Ring-Version"
SUFFIXES_PER_REQUEST = 256  # 4 bytes each in the URL: about 1 KiB of path

Hashes = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class PartRole:
    """What this node is for ``partition`` on ``drive`` and whom it talks to:
    the other primaries (primary) or every primary (handoff)."""

    partition: int
    drive: str
    primary: bool
    peers: tuple[Peer, ...]


def classify(partition: int, drive: str, node: tuple[str, int], primaries: Sequence[DeviceLike]) -> PartRole:
    """Role of the local copy of ``partition`` on ``drive`` of ``node``."""
    addr, port = node
    mine = [d for d in primaries if d.address == addr and d.port == port and d.device == drive]
    if mine:
        peers = tuple(Peer.of(d) for d in primaries if d not in mine)
        return PartRole(partition, drive, True, peers)
    return PartRole(partition, drive, False, tuple(Peer.of(d) for d in primaries))


def suffixes_to_push(local: Hashes, remote: Hashes) -> list[str]:
    """Local suffixes the peer lacks or holds differently, sorted."""
    return sorted(s for s, h in local.items() if remote.get(s) != h)


def confirmed(local: Hashes, remote: Hashes | None) -> bool:
    """The peer holds every local suffix with an equal hash."""
    return remote is not None and not suffixes_to_push(local, remote)


def can_drop(local: Hashes, confirmations: Mapping[Peer, Hashes | None], primaries: Sequence[Peer]) -> bool:
    """Invariant 3: a handoff partition may go only when every primary the
    ring names confirmed equal hashes for every local suffix. An empty
    local partition has nothing to lose."""
    if not local:
        return True
    if not primaries:
        return False
    return all(confirmed(local, confirmations.get(p)) for p in primaries)


def batches(suffixes: Sequence[str], size: int = SUFFIXES_PER_REQUEST) -> list[list[str]]:
    return [list(suffixes[i:i + size]) for i in range(0, len(suffixes), size)]


def suffix_path(drive: str, partition: int, suffixes: Sequence[str] = ()) -> str:
    """``/d/p`` or ``/d/p/s1-s2`` (REPLICATE with a rehash from disk)."""
    base = f"/{drive}/{partition}"
    return f"{base}/{'-'.join(suffixes)}" if suffixes else base


def full_rehash_due(pass_number: int, rehash_interval: int) -> bool:
    """Pass 0 and every ``rehash_interval``-th pass rehash everything
    (0: never)."""
    return rehash_interval > 0 and pass_number % rehash_interval == 0


def parse_hashes(body: Any) -> dict[str, str]:
    """A REPLICATE answer -> ``{suffix: hash}``; ``ValueError`` when malformed."""
    if not isinstance(body, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in body.items()):
        raise ValueError("REPLICATE answer is not a JSON object of suffix -> hash")
    return dict(body)


class Throttle:
    """Bytes-per-second limit as a virtual clock: ``delay(now, n)`` is how
    long to wait before sending ``n`` more bytes (0: unlimited)."""

    __slots__ = ("rate", "_next")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0

    def delay(self, now: float, n: int) -> float:
        if self.rate <= 0:
            return 0.0
        start = max(self._next, now)
        self._next = start + n / self.rate
        return start - now


@dataclass(slots=True)
class PassStats:
    """Counts of one pass over a node's drives (logged and written for
    ``ringstack status``)."""

    partitions: int = 0
    primaries: int = 0
    handoffs: int = 0
    suffixes_synced: int = 0
    suffixes_pulled: int = 0
    bytes_sent: int = 0
    files_sent: int = 0
    partitions_dropped: int = 0
    drop_refused: int = 0
    ring_mismatch: int = 0
    peer_errors: int = 0
    drives_unavailable: int = 0
    full_rehash: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Did the pass move anything (tests replicate until a pass does not)."""
        return bool(self.suffixes_synced or self.suffixes_pulled or self.files_sent or self.partitions_dropped)

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "errors"}
        out["errors"] = self.errors[:20]
        out["changed"] = self.changed
        return out
