"""Fault 7 of issue 5 / FAULTS.md 13: container listings converge.

A container replica's node is down while objects are written and deleted
(some of them written before it went down). The PUTs and DELETEs succeed
(quorum of the other replicas); the updates that could not reach it are
queued. After it returns: the container replicators alone bring its listing
to the others' (row sync from sync points), the updater then drains every
queued update, the account replicas agree on the container's counts, and a
further pass changes nothing. Checked on every replica directly on its
storage node, not through the proxy (invariant 2: the newest row per name
wins everywhere; G4: every listing equals the set of live objects exactly).
"""

from __future__ import annotations

import json

from tests.fault import _dbs
from tests.fault._objects import Written, check_replicas, handoff_leftovers, replicate_until_quiet
from tests.support.cluster import start_cluster

ACCOUNT = "AUTH_test"


def _body(name: str) -> bytes:
    return f"bytes of {name}".encode()


def _node_of(cluster, device: str) -> int:
    for i, node in enumerate(cluster.layout.nodes):
        if any(dev == device for dev, _ in node.drives):
            return i
    raise KeyError(device)


def test_listings_converge_after_a_container_replica_was_down(tmp_path) -> None:
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=1)
    try:
        conn = cluster.connection()
        conn.put_container("c")
        live: set[str] = set()
        for i in range(5):
            conn.put_object("c", f"old-{i}", _body(f"old-{i}"))
            live.add(f"old-{i}")
        _, cnodes = _dbs.rings(cluster)["container"].get_nodes(ACCOUNT, "c")
        down_dev = cnodes[0].device
        down = _node_of(cluster, down_dev)
        cluster.kill_node(down)

        for i in range(25):
            conn.put_object("c", f"new-{i:02d}", _body(f"new-{i:02d}"), content_type="text/plain")
            live.add(f"new-{i:02d}")
        for name in ("old-0", "old-1", "new-03", "new-10", "new-20"):
            conn.delete_object("c", name)
            live.discard(name)

        cluster.restart_node(down)
        before = _dbs.container_listings(cluster, ACCOUNT, "c")
        assert before[down_dev] != sorted(live), "the returning replica missed the writes"
        assert all(v == sorted(live) for d, v in before.items() if d != down_dev)
        assert _dbs.async_pending_count(cluster) > 0, "updates for the down replica were queued"

        # 1. container replication alone converges every replica
        out = _dbs.run_daemons(cluster, ("container",))
        assert sum(r["rows_pushed"] + r["rows_pulled"] for r in out["container"]) > 0
        after = _dbs.container_listings(cluster, ACCOUNT, "c")
        assert after == {d: sorted(live) for d in after}, after
        summaries = _dbs.db_summaries(cluster, "container", ACCOUNT, "c")
        assert all(s is not None and s["hash"] == summaries[0]["hash"] for s in summaries)
        assert {s["objects"] for s in summaries} == {len(live)}

        # 2. the updater drains the queue (its late updates are older: no change)
        out = _dbs.run_daemons(cluster, ("updater", "account"))
        assert sum(r["sent"] for r in out["updater"]) > 0
        assert _dbs.async_pending_count(cluster) == 0
        assert _dbs.container_listings(cluster, ACCOUNT, "c") == {d: sorted(live) for d in after}

        # 3. accounts agree on the container's counts; through the proxy too
        accounts = _dbs.db_summaries(cluster, "account", ACCOUNT)
        assert all(a is not None and a["hash"] == accounts[0]["hash"] for a in accounts)
        _, anodes = _dbs.rings(cluster)["account"].get_nodes(ACCOUNT)
        for dev in anodes:
            part = _dbs.rings(cluster)["account"].get_part(ACCOUNT)
            status, body, _ = _dbs.backend(dev.port, "GET", f"/{dev.device}/{part}/{ACCOUNT}",
                                           {"Accept": "application/json"})
            assert status == 200
            row = next(r for r in json.loads(body) if r["name"] == "c")
            assert row["count"] == len(live), (dev.device, row)
        _, listing = conn.get_container("c")
        assert sorted(o["name"] for o in listing) == sorted(live)

        # 4. quiet: a further pass of every daemon changes nothing
        out = _dbs.run_daemons(cluster, ("container", "account", "updater"))
        assert not any(r["changed"] for rs in out.values() for r in rs), out

        # G1/G4 after the object replicators: every live object on its N
        # primaries, no handoff partition left, listings still exact
        replicate_until_quiet(cluster)
        gone = {"old-0", "old-1", "new-03", "new-10", "new-20"}
        check_replicas(cluster, ACCOUNT, [Written("c", n, _body(n), "ok") for n in sorted(live | gone)],
                       deleted=gone)
        assert handoff_leftovers(cluster) == []
        assert _dbs.container_listings(cluster, ACCOUNT, "c") == {d: sorted(live) for d in after}
    finally:
        cluster.stop()
