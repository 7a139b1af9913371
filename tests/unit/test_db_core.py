"""The database replication core against the real listing databases (LMDB in a
temp dir): replicas with random row histories, synced pairwise in any order,
end with the same rows, equal to the newest-wins merge of every write
(invariant 2), and a second round changes nothing."""

from __future__ import annotations

import itertools
import json
import tempfile
from typing import Any

import lmdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.timestamp import Timestamp
from replicator import db_core, peers
from replicator.db_core import LOCAL, Call, Reply
from storage_node.listing_db import DbRef, ListingDbs, NotFound
from storage_node.rows_core import (
    ZERO,
    ContainerRow,
    DbInfo,
    ObjectRow,
    Row,
    info_from_dict,
    merge_rows,
    row_from_list,
    row_to_list,
)

_ENV = lmdb.open(tempfile.mkdtemp(prefix="dbcore-"), map_size=256 << 20, max_dbs=16, sync=False)
_DBS = ListingDbs(_ENV)
_COUNTER = itertools.count()


class Replica:
    """One database replica, answering REPLICATE ops as ``_listing_http`` does."""

    def __init__(self, run: int, i: int, kind: str = "container") -> None:
        self.ref = DbRef(kind, f"run{run}", f"r{i}" if kind == "container" else None)
        if kind == "account":
            self.ref = DbRef(kind, f"run{run}-r{i}")

    def write(self, fn: Any, *args: Any) -> Any:
        with _ENV.begin(write=True) as txn:
            return fn(txn, *args)

    def summary(self) -> dict[str, Any] | None:
        with _ENV.begin() as txn:
            state = _DBS.state(txn, self.ref)
            return None if state is None else json.loads(json.dumps(state.summary()))

    def rows(self) -> list[Row]:
        with _ENV.begin() as txn:
            state = _DBS.state(txn, self.ref)
            return [] if state is None else list(_DBS.iter_rows(txn, state.cid, None, True, False))

    def create(self, ts: Timestamp) -> None:
        self.write(lambda txn: _DBS.create(txn, self.ref, 1, DbInfo(ts, ts, status_changed_at=ts))
                   if _DBS.state(txn, self.ref) is None else None)

    def put_row(self, row: Row) -> None:
        self.write(lambda txn: _DBS.merge_row(txn, _DBS.state(txn, self.ref), row))

    def op(self, body: dict[str, Any]) -> Reply:
        op = body["op"]
        try:
            if op == "info":
                s = self.summary()
                return Reply(404) if s is None else Reply(200, s)
            if op == "rows_since":
                with _ENV.begin() as txn:
                    state = _DBS.state(txn, self.ref)
                    if state is None:
                        return Reply(404)
                    rows, point = _DBS.rows_since(txn, state, body["point"], body["limit"])
                    return Reply(200, json.loads(json.dumps({
                        "rows": [row_to_list(r) for r in rows], "point": point, "max_row": state.max_row,
                        "hash": state.hash_hex, "info": state.summary()["info"]})))
            if op == "merge":
                rows = [row_from_list(r) for r in body["rows"]]
                info = info_from_dict(body["info"]) if body.get("info") else None
                changed, state = self.write(lambda txn: _DBS.merge_rows(txn, self.ref, 1, rows, info))
                return Reply(200, json.loads(json.dumps({"changed": changed, "summary": state.summary()})))
            if op == "sync_points":
                with _ENV.begin() as txn:
                    return Reply(200, {"points": _DBS.sync_points(txn, self.ref)})
            if op == "set_sync_point":
                self.write(lambda txn: _DBS.set_sync_point(txn, self.ref, body["remote"], body["point"]))
                return Reply(200, {"ok": True})
        except NotFound:
            return Reply(404)
        raise AssertionError(f"unexpected op {op}")


def run_sync(local: Replica, remote: Replica, pull: bool = True, batch: int = 3) -> db_core.PairResult:
    if local.summary() is None:  # the replicator only syncs the databases it holds
        return db_core.PairResult(True, in_sync=remote.summary() is None)
    gen = db_core.sync_pair(local.summary() or {}, remote.summary(), pull=pull, batch=batch)
    reply: Reply | None = None
    while True:
        try:
            call: Call = gen.send(reply) if reply is not None else next(gen)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        reply = (local if call.side == LOCAL else remote).op(call.body)


names = st.sampled_from([f"o{i}" for i in range(6)])
writes = st.lists(st.tuples(st.integers(0, 2), names, st.integers(1, 50), st.booleans(), st.integers(0, 9)),
                  max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 3), history=writes, exists=st.lists(st.booleans(), min_size=3, max_size=3),
       order=st.randoms(use_true_random=False), mid_writes=writes, kind=st.sampled_from(["container", "account"]))
def test_replicas_converge_in_any_order(n: int, history: list[Any], exists: list[bool], order: Any,
                                        mid_writes: list[Any], kind: str) -> None:
    """Container databases (object rows, R1) and account databases
    (container rows, R2: timestamps by max, counts by newest stats)."""
    run = next(_COUNTER)
    reps = [Replica(run, i, kind) for i in range(n)]
    expected: dict[str, Row] = {}
    exists = [*exists[:n]]
    exists[0] = True  # at least one replica holds the database

    def apply(i: int, name: str, t: int, deleted: bool, size: int) -> None:
        if not exists[i]:
            return
        ts = Timestamp.from_seconds(1000 + t)
        row: Row = (ObjectRow(name, ts, size, "text/plain", f"e{size}", deleted) if kind == "container"
                    else ContainerRow(name, ZERO if deleted else ts, ts if deleted else ZERO, size, size * 10,
                                      Timestamp.from_seconds(1000 + t + size)))
        reps[i].put_row(row)
        expected[name] = merge_rows(expected.get(name), row)  # type: ignore[assignment]

    for i, ok in enumerate(exists):
        if ok:
            reps[i].create(Timestamp.from_seconds(100 + i))
    for i, name, t, deleted, size in history:
        apply(i % n, name, t, deleted, size)
    pairs = [(a, b) for a in range(n) for b in range(n) if a != b]
    order.shuffle(pairs)
    # writes landing between syncs (the replicator runs while clients write)
    cut = order.randrange(len(pairs) + 1)
    for a, b in pairs[:cut]:
        assert run_sync(reps[a], reps[b], pull=order.random() < 0.5).ok
    for i, name, t, deleted, size in mid_writes:
        apply(i % n, name, t, deleted, size)
    for a, b in pairs[cut:]:
        assert run_sync(reps[a], reps[b], pull=order.random() < 0.5).ok
    # one more full round in another order (the rows written mid-round travel now)
    order.shuffle(pairs)
    for a, b in pairs:
        assert run_sync(reps[a], reps[b]).ok
    want = sorted(expected.values(), key=lambda r: r.name)
    summaries = [r.summary() for r in reps]
    for rep, s in zip(reps, summaries, strict=True):
        assert rep.rows() == want
        assert s is not None and db_core.in_sync(s, summaries[0])
    # quiescent: another pass sends nothing
    for a, b in pairs:
        res = run_sync(reps[a], reps[b])
        assert res.ok and res.in_sync, res


def test_whole_database_moves_to_an_empty_peer_in_batches() -> None:
    run = next(_COUNTER)
    a, b = Replica(run, 0), Replica(run, 1)
    a.create(Timestamp.from_seconds(5))
    for i in range(10):
        a.put_row(ObjectRow(f"x{i}", Timestamp.from_seconds(10 + i), i))
    res = run_sync(a, b, batch=4)
    assert res.ok and res.pushed is not None and res.pushed.created and res.pushed.rows == 10
    assert b.rows() == a.rows() and db_core.in_sync(a.summary(), b.summary())
    # the sync point was kept: a new row is the only one sent next time
    a.put_row(ObjectRow("y", Timestamp.from_seconds(99)))
    res = run_sync(a, b, pull=False)
    assert res.pushed is not None and res.pushed.rows == 1


def test_handoff_drop_needs_every_primary_and_one_hash() -> None:
    ok = db_core.PairResult(True, local_hash="h1", local_info="i1")
    assert db_core.may_drop([ok, ok, ok], 3) == ("h1", "i1")
    assert db_core.may_drop([ok, ok], 3) is None
    assert db_core.may_drop([ok, db_core.PairResult(False)], 2) is None
    assert db_core.may_drop([ok, db_core.PairResult(True, local_hash="h2", local_info="i1")], 2) is None
    assert db_core.may_drop([ok, db_core.PairResult(True, local_hash="h1", local_info="i2")], 2) is None
    assert db_core.may_drop([], 0) is None


def test_role_and_local_node() -> None:
    from ring.ringfile import RingDevice

    devs = [RingDevice(i, f"n{i}", 1, i, "127.0.0.1", 6000 + i, f"d{i}", 1.0) for i in range(4)]
    role = db_core.db_role("d1", ("127.0.0.1", 6001), devs[:3])
    assert role.primary and [p.device for p in role.peers] == ["d0", "d2"]
    role = db_core.db_role("d3", ("127.0.0.1", 6003), devs[:3])
    assert not role.primary and len(role.peers) == 3
    assert peers.local_node(devs, ["d2"]) == ("127.0.0.1", 6002)
