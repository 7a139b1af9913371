"""Fault 4 of issue 5 / FAULTS.md 5: DELETE while one primary is down.

Invariant 2: a delete is a tombstone with a timestamp; a deleted object never
comes back, and a tombstone (object ``.ts`` file and container tombstone row)
is never reclaimed before ``reclaim_age`` (here a small one from the config).

An object is written, one of its primaries is killed, the object is deleted
(2xx) and the primary comes back holding the old ``.data``. After the object
and container replicators run until quiet: no GET returns it, every primary
holds exactly the tombstone on disk (no ``.data`` anywhere: no resurrection),
every container replica keeps a tombstone row and lists it no more. Only once
``reclaim_age`` has passed do replication passes reclaim the ``.ts`` files and
the tombstone rows; the object still does not come back. G1/G4 hold for a
neighbour object written alongside.
"""

from __future__ import annotations

import json
import time

from tests.fault import _dbs
from tests.fault._objects import Written, check_replicas, handoff_leftovers, replicate_until_quiet
from tests.support.cluster import start_cluster

ACCOUNT = "AUTH_test"
RECLAIM_AGE = 12.0


def _node_of(cluster, device: str) -> int:
    for i, node in enumerate(cluster.layout.nodes):
        if any(dev == device for dev, _ in node.drives):
            return i
    raise KeyError(device)


def _container_rows(cluster, container: str) -> list[dict[str, bool]]:
    """Per container replica: {name: deleted} of every row, tombstones included."""
    ring = _dbs.rings(cluster)["container"]
    part, nodes = ring.get_nodes(ACCOUNT, container)
    out = []
    for dev in nodes:
        status, body, _ = _dbs.backend(dev.port, "REPLICATE", f"/{dev.device}/{part}/{ACCOUNT}/{container}",
                                       {"X-Backend-Type": "container"},
                                       json.dumps({"op": "rows_since", "point": 0, "limit": 10000}).encode())
        assert status == 200, (dev.device, status, body)
        out.append({row[1]: bool(row[6]) for row in json.loads(body)["rows"]})
    return out


def _replicate(cluster) -> None:
    replicate_until_quiet(cluster)
    _dbs.run_until_quiet(cluster, ("updater", "container", "account"))


def test_delete_while_a_primary_is_down_stays_deleted(tmp_path) -> None:
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=1,
                            extra_config={"storage": {"reclaim_age": RECLAIM_AGE}})
    try:
        conn = cluster.connection()
        conn.put_container("c")
        conn.put_object("c", "victim", b"doomed bytes")
        conn.put_object("c", "keeper", b"kept bytes")
        _, primaries = _dbs.rings(cluster)["object"].get_nodes(ACCOUNT, "c", "victim")
        down = _node_of(cluster, primaries[0].device)
        cluster.kill_node(down)

        conn.delete_object("c", "victim")  # 204 from the quorum of the others
        deleted_at = time.time()
        cluster.restart_node(down)
        stale = cluster.object_files(ACCOUNT, "c", "victim", ".data")
        assert stale, "the returning primary still holds the old data"

        _replicate(cluster)
        assert time.time() - deleted_at < RECLAIM_AGE, "too slow to check the before-reclaim state"
        try:
            conn.get_object("c", "victim")
            raise AssertionError("the deleted object came back")
        except Exception as exc:
            assert getattr(exc, "http_status", None) == 404, exc
        for dev in primaries:
            st, _, hdrs = _dbs.backend(dev.port, "GET", f"/{dev.device}/{_part(cluster, 'victim')}/{ACCOUNT}/c/victim")
            assert st == 404 and "x-backend-timestamp" in hdrs, (dev.device, st)
        files = cluster.object_files(ACCOUNT, "c", "victim")
        assert files and all(f.name.endswith(".ts") for f in files), files
        assert {f.parents[4].name for f in files} >= {d.device for d in primaries}
        rows = _container_rows(cluster, "c")
        assert all(r.get("victim") is True for r in rows), rows  # tombstone row kept
        assert all(r.get("keeper") is False for r in rows)
        check_replicas(cluster, ACCOUNT, [Written("c", "keeper", b"kept bytes", "ok")])
        assert not handoff_leftovers(cluster)

        # after reclaim_age: tombstones go, the object still does not come back
        time.sleep(max(0.0, deleted_at + RECLAIM_AGE + 1.0 - time.time()))
        _replicate(cluster)
        assert cluster.object_files(ACCOUNT, "c", "victim") == []
        rows = _container_rows(cluster, "c")
        assert all("victim" not in r and r.get("keeper") is False for r in rows), rows
        _, listing = conn.get_container("c")
        assert [o["name"] for o in listing] == ["keeper"]
        check_replicas(cluster, ACCOUNT, [Written("c", "keeper", b"kept bytes", "ok")])
    finally:
        cluster.stop()


def _part(cluster, name: str) -> int:
    return _dbs.rings(cluster)["object"].get_part(ACCOUNT, "c", name)
