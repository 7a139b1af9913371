"""Container/account database replication, sans I/O (no trio, no clock, no disk).

A database replica lives on one drive; its peers are the other primaries the
container (account) ring names for the database's partition. Rules
(DESIGN invariants 2 and 3, BACKEND_API.md "Container/account databases"):

- **Role.** A database on a local drive is *primary* there when the ring
  lists that very device (address, port, device) among its partition's
  primaries; otherwise the local copy is a *handoff* and its peers are every
  primary.
- **In sync.** Two replicas are in sync when their ``hash`` (XOR of row
  digests) and ``info`` are equal; then nothing is sent.
- **Transfer** (``transfer``): rows of database S written after the row id up
  to which S was already sent to database D (S's sync point for D's db id,
  Swift's outgoing_sync) are read in batches with ``rows_since`` and merged
  into D with S's ``info`` (which creates D when it has no such database: a
  whole database moves), then S records the new sync point for D. Merges are
  newest-wins per row (rows_core R1/R2), so order and repetition never matter;
  a merge that changes nothing takes no new row id, so rows never ping-pong.
- **Pair sync** (``sync_pair``): push local -> peer, then pull peer -> local
  (the same transfer the other way; the sync point then lives on the peer),
  so one node's pass alone brings both replicas to the union of their rows.
- **Handoff.** A handoff pushes to every primary; it may ``drop`` itself only
  when every primary acknowledged a complete transfer, and the drop carries
  the hash it had when the transfers finished, so a row written meanwhile
  keeps the database (the node refuses with 409; invariant 3).

The generators below yield ``Call`` requests and receive ``Reply`` answers;
a shell executes them over HTTP (``db_replicator``), a test against databases
in memory. A non-2xx reply ends the generator with ``ok=False``.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from replicator.peers import DeviceLike, Peer

LOCAL: Literal["local"] = "local"
REMOTE: Literal["remote"] = "remote"
Side = Literal["local", "remote"]
BATCH_ROWS = 1000


@dataclass(frozen=True, slots=True)
class DbRole:
    primary: bool
    peers: tuple[Peer, ...]


def db_role(drive: str, node: tuple[str, int], primaries: Sequence[DeviceLike]) -> DbRole:
    """Role of the local database on ``drive`` of ``node`` and whom it syncs with."""
    addr, port = node
    everyone = [Peer(d.address, d.port, d.device) for d in primaries]
    me = Peer(addr, port, drive)
    if me in everyone:
        return DbRole(True, tuple(p for p in everyone if p != me))
    return DbRole(False, tuple(everyone))


def in_sync(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Two summaries hold equal rows and equal info."""
    return a is not None and b is not None and a.get("hash") == b.get("hash") and a.get("info") == b.get("info")


@dataclass(frozen=True, slots=True)
class Call:
    """One REPLICATE op on the local or the remote replica (JSON body)."""

    side: Side
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class TransferResult:
    ok: bool
    rows: int = 0  # rows sent
    changed: int = 0  # rows the destination changed
    created: bool = False
    summary: Mapping[str, Any] | None = None  # destination summary after the last merge


@dataclass(frozen=True, slots=True)
class PairResult:
    ok: bool
    in_sync: bool = False  # nothing to do
    pushed: TransferResult | None = None
    pulled: TransferResult | None = None
    local_hash: str = ""  # our hash when the push finished (what a handoff may drop with)
    local_info: str = ""  # our info then (canonical JSON): an info-only change also keeps a handoff


Steps = Generator[Call, Reply, Any]


def _other(side: Side) -> Side:
    return REMOTE if side == LOCAL else LOCAL


def transfer(src: Side, dst_summary: Mapping[str, Any] | None,
             batch: int = BATCH_ROWS) -> Generator[Call, Reply, TransferResult]:
    """Send ``src``'s rows the destination has not had yet (see module rules).
    ``dst_summary`` None: the destination has no such database (a whole
    database moves, created by the first merge with ``src``'s info)."""
    dst = _other(src)
    point, dst_id, created = 0, None, dst_summary is None
    if dst_summary is not None:
        dst_id = str(dst_summary["id"])
        reply = yield Call(src, {"op": "sync_points"})
        if not reply.ok:
            return TransferResult(False)
        point = int(reply.body.get("points", {}).get(dst_id, 0))
    sent = changed = 0
    summary: Mapping[str, Any] | None = dst_summary
    while True:
        reply = yield Call(src, {"op": "rows_since", "point": point, "limit": batch})
        if not reply.ok:
            return TransferResult(False, sent, changed, created, summary)
        rows, new_point, info = reply.body["rows"], int(reply.body["point"]), reply.body["info"]
        done = new_point >= int(reply.body["max_row"]) or not rows
        if rows or dst_id is None or summary is None or summary.get("info") != info:
            reply = yield Call(dst, {"op": "merge", "rows": rows, "info": info})
            if not reply.ok:
                return TransferResult(False, sent, changed, created, summary)
            sent += len(rows)
            changed += int(reply.body.get("changed", 0))
            summary = reply.body["summary"]
            dst_id = str(summary["id"])
        if new_point > point:
            reply = yield Call(src, {"op": "set_sync_point", "remote": dst_id, "point": new_point})
            if not reply.ok:
                return TransferResult(False, sent, changed, created, summary)
            point = new_point
        if done:
            return TransferResult(True, sent, changed, created, summary)


def sync_pair(local: Mapping[str, Any], remote: Mapping[str, Any] | None, pull: bool = True,
              batch: int = BATCH_ROWS) -> Generator[Call, Reply, PairResult]:
    """Bring one local replica and one peer replica to the union of their rows
    and info: push, then (unless the peer was just created from ours) pull."""
    if in_sync(local, remote):
        return PairResult(True, in_sync=True, local_hash=str(local["hash"]), local_info=canonical(local["info"]))
    pushed = yield from transfer(LOCAL, remote, batch)
    if not pushed.ok:
        return PairResult(False, pushed=pushed)
    pulled = None
    if pull and remote is not None:
        reply = yield Call(LOCAL, {"op": "info"})
        if not reply.ok:
            return PairResult(False, pushed=pushed)
        pulled = yield from transfer(REMOTE, reply.body, batch)
        if not pulled.ok:
            return PairResult(False, pushed=pushed, pulled=pulled)
    reply = yield Call(LOCAL, {"op": "info"})
    if not reply.ok:
        return PairResult(False, pushed=pushed, pulled=pulled)
    return PairResult(True, pushed=pushed, pulled=pulled, local_hash=str(reply.body["hash"]),
                      local_info=canonical(reply.body["info"]))


def canonical(info: Any) -> str:
    return json.dumps(info, sort_keys=True, separators=(",", ":"))


def may_drop(results: Sequence[PairResult], n_primaries: int) -> tuple[str, str] | None:
    """``(hash, info)`` a handoff may drop itself with (invariant 3): every
    primary acknowledged a complete sync and all saw the same local hash and
    info; else None. The shell drops only if its info still equals ``info``
    and the node's ``drop`` finds the hash unchanged."""
    if n_primaries == 0 or len(results) != n_primaries or not all(r.ok for r in results):
        return None
    states = {(r.local_hash, r.local_info) for r in results}
    if len(states) != 1:
        return None
    state = states.pop()
    return None if "" in state else state
