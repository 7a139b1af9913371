"""The container and account replicators (shell around ``replicator.db_core``).

One per storage node and kind. A pass, for every local drive: find the
partitions holding databases of that kind (read from the drive's LMDB
``listing.parts`` index, read-only, opened and closed per pass so a replaced
drive is seen), list each partition's databases with ``REPLICATE /<d>/<p>``
on the local node, and per database (up to ``concurrency`` at once):

- first ``reclaim`` (as Swift: tombstone rows older than the node's
  reclaim_age, and the database itself once deleted, empty and old; the node
  enforces the age: invariant 2), so reclaimable rows are not sent on;
- primary (the ring names this device): ``sync_pair`` with every other
  primary (push our rows since the peer's sync point, pull theirs since
  ours; a peer without the database gets it whole; a peer whose drive
  answers 507 is replaced by the next handoff device). A peer that had not
  reclaimed yet may hand an old tombstone back: the next pass reclaims it;
- handoff: push to every primary, then ``drop`` with the hash it had when
  every primary acknowledged, so nothing written meanwhile is lost
  (invariant 3). A primary that is down keeps the handoff for the next pass.

Every write goes through the storage servers' REPLICATE ops (their group
commit and checks), never into LMDB from here. Cancel: a cancelled pass leaves
only whole merges behind (each merge is one transaction on its node).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lmdb
import trio

from common.http import HTTPClient, quote_path
from common.log import get_logger, log_event
from replicator import db_core
from replicator._daemon import DaemonSettings
from replicator.db_core import LOCAL, Call, PairResult, Reply
from replicator.peers import Peer


def db_partitions(drive_root: Path, kind: str) -> list[int]:
    """(thread) Partitions of ``kind`` databases on a drive, from the
    ``listing.parts`` keys (``kind[:1] + part(4) + ref key``, listing_db)."""
    from storage_node.index import _ENVS

    path = (drive_root / "index.lmdb").resolve()
    if not (path / "data.mdb").exists():
        return []
    shared = _ENVS.get(path)  # one process must not open an environment twice (LMDB's rule)
    env = shared or lmdb.open(str(path), readonly=True, lock=True, max_dbs=64, readahead=False)
    try:
        with env.begin() as txn:
            try:
                parts_db = env.open_db(b"listing.parts", txn=txn, create=False)
            except lmdb.NotFoundError:
                return []
            out: list[int] = []
            cur = txn.cursor(db=parts_db)
            tag = kind[:1].encode()
            key = tag
            while cur.set_range(key):
                k = bytes(cur.key())
                if not k.startswith(tag) or len(k) < 5:
                    break
                part = int.from_bytes(k[1:5], "big")
                out.append(part)
                key = tag + (part + 1).to_bytes(4, "big")
            return out
    finally:
        if shared is None:
            env.close()


class DbReplicator:
    def __init__(self, kind: str, ring: Any, drives: Mapping[str, Path], node: tuple[str, int],
                 settings: DaemonSettings = DaemonSettings(), *, client: HTTPClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if kind not in ("container", "account"):
            raise ValueError(f"kind must be container or account, not {kind!r}")
        self.kind = kind
        self.ring = ring
        self.drives = dict(drives)
        self.node = node
        self.settings = settings
        self.client = client or HTTPClient()
        self.clock = clock
        self.logger = get_logger(f"{kind}-replicator")

    async def _replicate(self, peer: Peer, path: str, body: dict[str, Any] | None = None) -> Reply:
        try:
            resp = await self.client.request(
                "REPLICATE", peer.address, peer.port, quote_path(path),
                {"X-Backend-Type": self.kind, "Content-Type": "application/json"},
                json.dumps(body).encode() if body is not None else b"", timeout=self.settings.node_timeout)
        except Exception as exc:  # unreachable peer: this pair waits for the next pass
            return Reply(599, repr(exc))
        if not 200 <= resp.status < 300:
            return Reply(resp.status, resp.body[:200].decode("utf-8", "replace"))
        return Reply(resp.status, json.loads(resp.body) if resp.body else {})

    async def _run(self, gen: Any, local: Peer, local_path: str, peer: Peer, peer_path: str) -> Any:
        reply: Reply | None = None
        while True:
            try:
                call: Call = gen.send(reply) if reply is not None else next(gen)
            except StopIteration as stop:
                return stop.value
            if call.side == LOCAL:
                reply = await self._replicate(local, local_path, call.body)
            else:
                reply = await self._replicate(peer, peer_path, call.body)

    def _db_path(self, dev: str, part: int, summary: Mapping[str, Any]) -> str:
        name = f"/{summary['account']}" + (f"/{summary['container']}" if self.kind == "container" else "")
        return f"/{dev}/{part}{name}"

    async def replicate_db(self, drive: str, local_part: int, summary: Mapping[str, Any],
                           st: dict[str, int]) -> None:
        st["dbs"] += 1
        account, container = summary["account"], summary.get("container")
        part, primaries = (self.ring.get_nodes(account, container) if self.kind == "container"
                           else self.ring.get_nodes(account))
        role = db_core.db_role(drive, self.node, primaries)
        me = Peer(self.node[0], self.node[1], drive)
        local_path = self._db_path(drive, local_part, summary)
        # reclaim first (as Swift): tombstones past reclaim_age are never sent on
        rec = await self._replicate(me, local_path, {"op": "reclaim"})
        if rec.ok:
            st["rows_reclaimed"] += int(rec.body.get("reclaimed", 0))
            if rec.body.get("dropped"):
                st["dbs_reclaimed"] += 1
                return
            summary = rec.body["summary"]
        results: list[PairResult] = []

        # a primary whose drive answers 507 is stood in for by the next handoff
        # (as Swift); that copy reverts by itself once the drive is back
        spares = iter([h for d in self.ring.get_more_nodes(part)
                       if (h := Peer(d.address, d.port, d.device)) != me and h not in role.peers])

        async def with_peer(peer: Peer) -> None:  # peers at once: a whole database moves in parallel
            peer_path = self._db_path(peer.device, part, summary)
            info = await self._replicate(peer, peer_path, {"op": "info"})
            while info.status == 507 and role.primary and (spare := next(spares, None)) is not None:
                st["handoffs_used"] += 1
                peer, peer_path = spare, self._db_path(spare.device, part, summary)
                info = await self._replicate(peer, peer_path, {"op": "info"})
            if info.status == 404:
                remote = None
            elif info.ok:
                remote = info.body
            else:
                st["peer_errors"] += 1
                results.append(PairResult(False))
                return
            res: PairResult = await self._run(
                db_core.sync_pair(summary, remote, pull=role.primary, batch=self.settings.batch_rows),
                me, local_path, peer, peer_path)
            results.append(res)
            if not res.ok:
                st["peer_errors"] += 1
            elif res.in_sync:
                st["in_sync"] += 1
            for tr, key in ((res.pushed, "rows_pushed"), (res.pulled, "rows_pulled")):
                if tr is not None:
                    st[key] += tr.rows
                    st["rows_changed"] += tr.changed
                    st["dbs_created"] += int(tr.created and tr.ok)

        async with trio.open_nursery() as nursery:
            for peer in role.peers:
                nursery.start_soon(with_peer, peer)
        if role.primary:
            return
        st["handoffs"] += 1
        confirmed = db_core.may_drop(results, len(role.peers))
        if confirmed is None:
            return
        now = await self._replicate(me, local_path, {"op": "info"})
        if not now.ok or db_core.canonical(now.body["info"]) != confirmed[1]:
            st["drop_refused"] += 1  # its info changed since the primaries confirmed: next pass
            return
        drop = await self._replicate(me, local_path, {"op": "drop", "hash": confirmed[0]})
        if drop.ok:
            st["handoffs_dropped"] += 1
        else:
            st["drop_refused"] += 1

    async def _drive_pass(self, drive: str, st: dict[str, int]) -> None:
        me = Peer(self.node[0], self.node[1], drive)
        try:
            parts = await trio.to_thread.run_sync(db_partitions, self.drives[drive], self.kind)
        except (lmdb.Error, OSError) as exc:
            st["drives_unavailable"] += 1
            log_event(self.logger, "drive_unavailable", drive=drive, error=repr(exc))
            return
        limiter = trio.CapacityLimiter(max(1, self.settings.concurrency))

        async def one(part: int, summary: Mapping[str, Any]) -> None:
            async with limiter:
                try:
                    await self.replicate_db(drive, part, summary, st)
                except Exception as exc:  # one bad database must not end the pass
                    st["errors"] += 1
                    log_event(self.logger, "db_replication_error", drive=drive, part=part,
                              db=summary.get("account"), error=repr(exc))

        async with trio.open_nursery() as nursery:
            for part in parts:
                listing = await self._replicate(me, f"/{drive}/{part}")
                if not listing.ok:
                    st["drives_unavailable" if listing.status == 507 else "errors"] += 1
                    if listing.status == 507:
                        return
                    continue
                st["partitions"] += 1
                for summary in listing.body.values():
                    nursery.start_soon(one, part, summary)

    async def run_pass(self) -> dict[str, Any]:
        """One pass over every local drive (drives in parallel); its counts."""
        self.ring.reload_if_changed()
        keys = ("partitions", "dbs", "in_sync", "rows_pushed", "rows_pulled", "rows_changed", "dbs_created",
                "rows_reclaimed", "dbs_reclaimed", "handoffs", "handoffs_dropped", "drop_refused", "handoffs_used",
                "peer_errors", "drives_unavailable", "errors")
        st = dict.fromkeys(keys, 0)
        async with trio.open_nursery() as nursery:
            for drive in sorted(self.drives):
                nursery.start_soon(self._drive_pass, drive, st)
        st["changed"] = int(st["rows_changed"] + st["dbs_created"] + st["handoffs_dropped"]
                            + st["dbs_reclaimed"] + st["rows_reclaimed"] > 0)
        return st
