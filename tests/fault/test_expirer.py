"""The expirer: an object past its X-Delete-At is deleted from every replica
(a tombstone on every primary, no ``.data`` left, no listing row), and
nothing else is: not an object expiring later, not one without expiry.
The expirer runs with an injected clock (its ``clock`` parameter), so the
test does not wait for real time to pass; the DELETE it sends carries the
X-Delete-At time as its timestamp and ``X-If-Delete-At`` (invariant 2: a
write made after the expiry would be newer and win).
"""

from __future__ import annotations

import time

from tests.fault import _dbs
from tests.support.cluster import start_cluster

ACCOUNT = "AUTH_test"


def test_expired_object_is_gone_from_every_replica(tmp_path) -> None:
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=1)
    try:
        conn = cluster.connection()
        conn.put_container("c")
        now = time.time()
        conn.put_object("c", "soon", b"short-lived", headers={"X-Delete-After": "600"})
        conn.put_object("c", "later", b"longer-lived", headers={"X-Delete-At": str(int(now) + 7200)})
        conn.put_object("c", "forever", b"no expiry")

        # not expired yet: nothing happens
        out = _dbs.run_daemons(cluster, ("expirer",), now=now + 1)
        assert sum(r["expired_found"] for r in out["expirer"]) == 0
        assert len(cluster.object_files(ACCOUNT, "c", "soon", ".data")) == 3

        out = _dbs.run_daemons(cluster, ("expirer",), now=now + 3600)
        found = sum(r["expired_found"] for r in out["expirer"])
        assert found >= 3, out  # every node holding a replica found it
        assert sum(r["retry"] for r in out["expirer"]) == 0
        assert cluster.object_files(ACCOUNT, "c", "soon", ".data") == []
        tombs = cluster.object_files(ACCOUNT, "c", "soon", ".ts")
        assert len(tombs) == 3
        for name in ("later", "forever"):
            assert len(cluster.object_files(ACCOUNT, "c", name, ".data")) == 3
        _dbs.run_daemons(cluster, ("updater", "container"))
        listings = _dbs.container_listings(cluster, ACCOUNT, "c")
        assert listings == {d: ["forever", "later"] for d in listings}, listings
        assert conn.get_object("c", "forever")[1] == b"no expiry"
        # a second pass finds nothing left to delete
        out = _dbs.run_daemons(cluster, ("expirer",), now=now + 3600)
        assert sum(r["expired_found"] for r in out["expirer"]) == 0
    finally:
        cluster.stop()
