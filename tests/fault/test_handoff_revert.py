"""FAULTS.md 4 / issue 5 fault test 2: a node is down while objects are
written, so they land on handoffs; when it returns the handoffs revert to it
and are removed from the handoff drives -- and only after every primary
confirmed (invariant 3): while the node is still down, replication pushes
but never drops a handoff partition.

Invariants: 1 (acknowledged writes survive, all N primaries equal after
replication, no handoff copy left) and 3 (deletes after sync only when every
new owner confirmed)."""

from __future__ import annotations

import os

from tests.fault._objects import (
    Written,
    check_replicas,
    handoff_leftovers,
    replicate_once,
    replicate_until_quiet,
)
from tests.support.cluster import start_cluster


def test_handoffs_revert_when_the_node_returns(tmp_path):
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=2, part_power=4)
    try:
        conn = cluster.connection()
        conn.put_container("c")
        cluster.kill_node(0)
        written = []
        for i in range(24):
            body = os.urandom(100 + 37 * i)
            conn.put_object("c", f"o{i}", body)
            written.append(Written("c", f"o{i}", body, "ok"))
        # GET works during the outage, from the surviving primaries or handoffs
        for w in written:
            assert conn.get_object("c", w.name)[1] == w.body
        leftovers = handoff_leftovers(cluster)
        assert leftovers, "no write landed on a handoff: the test proves nothing"

        # node 0 still down: every pass pushes, but no handoff partition may go
        for stats in replicate_once(cluster):
            assert stats["partitions_dropped"] == 0, stats
        assert handoff_leftovers(cluster) == leftovers

        cluster.restart_node(0)
        rounds = replicate_until_quiet(cluster)
        assert sum(s["partitions_dropped"] for r in rounds for s in r) >= 1
        assert handoff_leftovers(cluster) == []  # G4
        check_replicas(cluster, "AUTH_test", written)  # G1 on every primary
        for w in written:
            assert conn.get_object("c", w.name)[1] == w.body
    finally:
        cluster.stop()
