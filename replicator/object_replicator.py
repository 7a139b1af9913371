"""The object replicator daemon (shell around ``replicator.object_core``).

One replicator per storage node. A pass, for every local drive: list the
drive's partitions (``PARTITIONS /<drive>`` on the local node: index rows and
top-level directories, no walk of the objects), then per partition (up to
``concurrency`` at once per drive):

- read the local suffix hashes (``REPLICATE``; on a full-rehash pass every
  known suffix is first rehashed from disk, the bounded-staleness rule);
- primary: ``REPLICATE`` every other primary, stream ``SUFFIXES`` of each
  differing suffix from the local node straight into ``MERGE`` on the peer
  (bytes never land in this process, paced by ``bytes_per_second``), then ask
  the peer to rehash those suffixes. Push only; a peer's 507 sends the
  partition to the first usable handoff instead;
- handoff: the same towards every primary, pull back what still differs,
  and ``DROP`` the local partition once every primary confirmed equal hashes
  (the node re-checks under the partition lock: invariant 3).

Every request carries ``X-Backend-Ring-Version``; a 409 for it skips the
partition (object_core's header explains why). Cancel: a cancelled pass
leaves nothing half-done that matters (MERGE keeps whole files only, DROP is
atomic on the node). Each pass logs one JSON line (``replication_pass``) and
writes ``<drive>/replication.json`` (read by ``ringstack status``).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import trio

from common.http import HTTPClient, UpstreamError
from common.log import get_logger, log_event
from replicator.object_core import (
    RING_VERSION_HEADER,
    PassStats,
    Throttle,
    batches,
    can_drop,
    classify,
    full_rehash_due,
    parse_hashes,
    suffix_path,
    suffixes_to_push,
)
from replicator.peers import Peer

STATS_FILE = "replication.json"


@dataclass(frozen=True, slots=True)
class ReplicatorSettings:
    """The ``[replicator]`` section."""

    concurrency: int = 4  # partitions at once per drive
    bytes_per_second: float = 0.0  # 0: unlimited
    interval: float = 30.0  # seconds between the starts of two passes
    rehash_interval: int = 10  # every N-th pass rehashes every suffix from disk (0: never)
    node_timeout: float = 10.0  # REPLICATE / DROP
    merge_timeout: float = 600.0  # one SUFFIXES -> MERGE stream

    @classmethod
    def from_section(cls, sec: Mapping[str, Any], **overrides: Any) -> ReplicatorSettings:
        kw = {k: type(getattr(cls(), k))(v) for k, v in sec.items() if k in cls.__dataclass_fields__}
        return replace(cls(**kw), **{k: v for k, v in overrides.items() if v is not None})


class _Skip(Exception):
    """The partition is skipped this pass (peer unreachable, ring mismatch...)."""


class ObjectReplicator:
    def __init__(self, ring: Any, drives: Mapping[str, Path], node: tuple[str, int],
                 settings: ReplicatorSettings = ReplicatorSettings(), *, client: HTTPClient | None = None,
                 clock: Callable[[], float] = time.time, logger: logging.Logger | None = None,
                 rng: random.Random | None = None) -> None:
        self.ring = ring
        self.drives = dict(drives)
        self.node = node
        self.settings = settings
        self.client = client or HTTPClient()
        self.clock = clock
        self.logger = logger or get_logger("replicator")
        self.rng = rng or random.Random()
        self.throttle = Throttle(settings.bytes_per_second)
        self.passes = 0

    # -- requests ------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {RING_VERSION_HEADER: self.ring.checksum.hex(), "X-Backend-Type": "object"}

    def me(self, drive: str) -> Peer:
        return Peer(self.node[0], self.node[1], drive)

    async def _call(self, peer: Peer, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        try:
            resp = await self.client.request(method, peer.address, peer.port, path, self._headers(), body,
                                             timeout=self.settings.node_timeout)
        except (UpstreamError, trio.TooSlowError, OSError) as exc:
            raise _Skip(f"{method} {peer.label}{path}: {exc}") from exc
        return resp.status, resp.body

    async def hashes(self, peer: Peer, part: int, rehash: list[str] | tuple[str, ...] = (),
                     st: PassStats | None = None) -> dict[str, str] | int:
        """The peer's ``{suffix: hash}`` (after rehashing ``rehash`` from
        disk), or its error status (507: drive gone; 409: other ring)."""
        out: dict[str, str] = {}
        for group in batches(list(rehash)) or [[]]:
            status, body = await self._call(peer, "REPLICATE", suffix_path(peer.device, part, group))
            if status != 200:
                if status == 409 and st is not None:
                    st.ring_mismatch += 1
                return status
            try:
                out = parse_hashes(json.loads(body))
            except ValueError as exc:
                raise _Skip(f"REPLICATE {peer.label}: {exc}") from exc
        return out

    async def _paced(self, body: AsyncIterator[bytes], st: PassStats) -> AsyncIterator[bytes]:
        async for chunk in body:
            wait = self.throttle.delay(trio.current_time(), len(chunk))
            if wait > 0:
                await trio.sleep(wait)
            st.bytes_sent += len(chunk)
            yield chunk

    async def transfer(self, src: Peer, dst: Peer, part: int, suffixes: list[str], st: PassStats) -> int:
        """Stream ``SUFFIXES`` of ``src`` into ``MERGE`` on ``dst``; returns
        the files the receiver stored. Raises ``_Skip`` on any failure."""
        files = 0
        for group in batches(suffixes):
            query = f"{suffix_path(src.device, part)}?suffixes={'-'.join(group)}"
            try:
                with trio.fail_after(self.settings.merge_timeout):
                    async with self.client.stream("SUFFIXES", src.address, src.port, query, self._headers()) as s:
                        if s.status != 200:
                            await s.read()
                            raise _Skip(f"SUFFIXES {src.label}: {s.status}")
                        resp = await self.client.request("MERGE", dst.address, dst.port,
                                                         suffix_path(dst.device, part), self._headers(),
                                                         self._paced(s.iter_body(), st))
            except (UpstreamError, trio.TooSlowError, OSError) as exc:
                raise _Skip(f"{src.label} -> {dst.label} partition {part}: {exc}") from exc
            if resp.status != 200:
                raise _Skip(f"MERGE {dst.label} partition {part}: {resp.status} {resp.body[:200]!r}")
            files += int(json.loads(resp.body).get("files", 0))
        return files

    # -- one partition ---------------------------------------------------------------
    async def replicate_partition(self, drive: str, part: int, full: bool, st: PassStats) -> None:
        primaries = self.ring.get_part_nodes(part)
        role = classify(part, drive, self.node, primaries)
        me = self.me(drive)
        local = await self.hashes(me, part, st=st)
        if isinstance(local, int):
            raise _Skip(f"local REPLICATE {drive}/{part}: {local}")
        if full and local:
            local = await self.hashes(me, part, sorted(local), st)
            if isinstance(local, int):
                raise _Skip(f"local rehash {drive}/{part}: {local}")
        st.partitions += 1
        if role.primary:
            st.primaries += 1
            if local:
                await self._sync_primary(me, part, local, list(role.peers), st)
        else:
            st.handoffs += 1
            await self._revert(me, part, local, list(role.peers), st)

    async def _push(self, me: Peer, peer: Peer, part: int, local: Mapping[str, str],
                    remote: Mapping[str, str], st: PassStats) -> dict[str, str] | int:
        """Push what differs; the peer's hashes after rehashing those suffixes."""
        push = suffixes_to_push(local, remote)
        if not push:
            return dict(remote)
        sent = await self.transfer(me, peer, part, push, st)  # (not `+= await`: tasks interleave)
        st.files_sent += sent
        st.suffixes_synced += len(push)
        return await self.hashes(peer, part, push, st)

    async def _sync_primary(self, me: Peer, part: int, local: dict[str, str], peers: list[Peer],
                            st: PassStats) -> None:
        handoffs = None
        targets = list(peers)
        while targets:
            peer = targets.pop(0)
            try:
                remote = await self.hashes(peer, part, st=st)
                if remote == 507:  # drive failed: keep N copies on the next handoff (Swift)
                    handoffs = handoffs if handoffs is not None else self._handoffs(part, me)
                    nxt = next(handoffs, None)
                    if nxt is not None:
                        targets.append(nxt)
                    continue
                if isinstance(remote, int):
                    st.peer_errors += 1
                    continue
                await self._push(me, peer, part, local, remote, st)
            except _Skip as exc:
                st.peer_errors += 1
                st.errors.append(str(exc))

    def _handoffs(self, part: int, me: Peer) -> Any:
        for dev in self.ring.get_more_nodes(part):
            p = Peer.of(dev)
            if (p.address, p.port, p.device) != (me.address, me.port, me.device):
                yield p

    async def _revert(self, me: Peer, part: int, local: dict[str, str], primaries: list[Peer],
                      st: PassStats) -> None:
        confirms: dict[Peer, Mapping[str, str] | None] = {}
        pulled = False
        for peer in primaries:
            try:
                remote = await self.hashes(peer, part, st=st)
                if isinstance(remote, int):
                    confirms[peer] = None
                    continue
                after = await self._push(me, peer, part, local, remote, st) if local else remote
                if isinstance(after, int):
                    confirms[peer] = None
                    continue
                newer = suffixes_to_push(local, after)
                if newer:  # the primary holds something newer: take it, so hashes can agree
                    await self.transfer(peer, me, part, newer, st)
                    st.suffixes_pulled += len(newer)
                    again = await self.hashes(me, part, newer, st)
                    if isinstance(again, int):
                        raise _Skip(f"local rehash {me.label}/{part}: {again}")
                    local, pulled = again, True
                confirms[peer] = after
            except _Skip as exc:
                confirms[peer] = None
                st.peer_errors += 1
                st.errors.append(str(exc))
        if pulled:  # local changed: every primary confirms the final state again
            for peer in primaries:
                try:
                    remote = await self.hashes(peer, part, st=st)
                except _Skip:
                    remote = 0
                confirms[peer] = None if isinstance(remote, int) else remote
        if not can_drop(local, confirms, primaries):
            return
        status, body = await self._call(me, "DROP", suffix_path(me.device, part), json.dumps(local).encode())
        if status == 204:
            st.partitions_dropped += 1
            log_event(self.logger, "handoff_dropped", drive=me.device, partition=part,
                      primaries=[p.label for p in primaries])
        else:
            st.drop_refused += 1

    # -- passes ------------------------------------------------------------------------
    async def _drive_pass(self, drive: str, full: bool, st: PassStats) -> None:
        me = self.me(drive)
        try:
            status, body = await self._call(me, "PARTITIONS", f"/{drive}")
        except _Skip as exc:
            st.drives_unavailable += 1
            st.errors.append(str(exc))
            return
        if status != 200:
            st.drives_unavailable += 1
            return
        parts = [int(p) for p in json.loads(body)]
        # shuffled (as Swift's jobs): the primaries of one partition rarely push
        # to a peer at the same moment, so the later one finds it in sync already
        self.rng.shuffle(parts)
        limiter = trio.CapacityLimiter(max(1, self.settings.concurrency))

        async def one(part: int) -> None:
            async with limiter:
                try:
                    await self.replicate_partition(drive, part, full, st)
                except _Skip as exc:
                    st.peer_errors += 1
                    st.errors.append(str(exc))

        async with trio.open_nursery() as nursery:
            for part in parts:
                if part < self.ring.partitions:
                    nursery.start_soon(one, part)

    async def run_pass(self) -> PassStats:
        """One pass over every local drive (drives in parallel)."""
        self.ring.reload_if_changed()
        full = full_rehash_due(self.passes, self.settings.rehash_interval)
        st = PassStats(full_rehash=full)
        start_wall, start = self.clock(), trio.current_time()
        async with trio.open_nursery() as nursery:
            for drive in sorted(self.drives):
                nursery.start_soon(self._drive_pass, drive, full, st)
        self.passes += 1
        duration = trio.current_time() - start
        record = {"daemon": "object-replicator", "node": f"{self.node[0]}:{self.node[1]}", "pass": self.passes,
                  "started": start_wall,
                  "duration": round(duration, 6), "ring_version": self.ring.checksum.hex(), **st.as_dict()}
        log_event(self.logger, "replication_pass", **record)
        await trio.to_thread.run_sync(self._write_stats, record)
        return st

    def _write_stats(self, record: dict[str, Any]) -> None:
        for path in self.drives.values():
            try:
                tmp = path / f".{STATS_FILE}.tmp"
                tmp.write_text(json.dumps(record, sort_keys=True))
                os.replace(tmp, path / STATS_FILE)
            except OSError:
                continue  # a missing drive: nothing to report there

    async def run_until_quiet(self, max_passes: int = 10) -> list[PassStats]:
        out = []
        for _ in range(max_passes):
            out.append(await self.run_pass())
            if not out[-1].changed:
                break
        return out

    async def run_forever(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            start = trio.current_time()
            await self.run_pass()
            await trio.sleep_until(start + self.settings.interval)


async def run_object_replicator(ring: Any, drives: Mapping[str, Path], node: tuple[str, int], *,
                                settings: ReplicatorSettings = ReplicatorSettings(),
                                clock: Callable[[], float] = time.time, client: HTTPClient | None = None,
                                once: bool = False,
                                task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> PassStats | None:
    """Run the replicator for one node: one pass with ``once`` (returns its
    stats), else forever (started at once; cancel to stop)."""
    rep = ObjectReplicator(ring, drives, node, settings, client=client, clock=clock)
    if once:
        task_status.started(rep)
        return await rep.run_pass()
    task_status.started(rep)
    await rep.run_forever()
    return None
