"""FAULTS.md 9 (proc part) / issue 5 fault test 6: add a node, rebalance
the object ring, push the new ring file (every server reloads it), and
replicate while a reader keeps reading every object through the proxy.

Invariants 1, 3 and 8: data moves to the new primaries; no object is
unreadable at any point during the move (a reader loops over all of them
while the replicators run); after replication every replica sits on the new
primaries, equal, and the old copies are gone (G1, G4). Replication requests
carry the ring version: while the storage nodes still have the old ring,
a replicator on the new one is refused (409) and moves nothing.
(Only the object ring is rebalanced: container rings are the container
replicator's business.)"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import trio

from cli import _devcluster as dc
from replicator.object_replicator import ObjectReplicator
from ring.builderfile import ClusterBuilder
from ring.inventory import Host
from ring.lookup import Ring
from ring.ringfile import write_ring
from tests.fault._objects import (
    Written,
    check_replicas,
    handoff_leftovers,
    replicate_in_process,
    replicate_until_quiet,
)
from tests.support.cluster import start_cluster
from tests.support.procs import start_server


def _add_node(cluster, now: float) -> Path:
    """A fifth node (two drives) in the inventory, its server started, the
    object ring rebalanced; returns the new ring file (not yet pushed)."""
    layout = cluster.layout
    cb = ClusterBuilder.load(layout.builder_path)
    port = dc.free_ports(1)[0]
    name = f"node{len(layout.nodes) + 1}"
    cb.inventory.add_host(Host(name, 1, len(layout.nodes) + 1, "127.0.0.1", port), now=now)
    for j in (1, 2):
        device = f"d{2 * len(layout.nodes) + j}"
        cb.inventory.add_drive(name, device, 100.0, now=now)
        (layout.data_dir / name / device).mkdir(parents=True)
    report = cb.rebalance("object", now)
    assert report.moved > 0
    staged = layout.data_dir / "object.ring.new"
    write_ring(staged, cb.ring_data("object"))
    cb.save(layout.builder_path)
    cluster.layout = dc.layout_from_inventory(layout.data_dir, cb.inventory)
    spec = dc.storage_spec(cluster.layout, len(cluster.layout.nodes) - 1)
    cluster.storage_specs.append(spec)
    cluster.nodes.append(start_server(spec.argv))
    return staged


def test_add_node_rebalance_move_data_readable_throughout(tmp_path):
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=2, part_power=4)
    try:
        conn = cluster.connection()
        conn.put_container("c")
        written = [Written("c", f"o{i}", os.urandom(400 + i), "ok") for i in range(40)]
        for w in written:
            conn.put_object("c", w.name, w.body)

        staged = _add_node(cluster, time.time())
        # push the ring (atomic replace): every storage server reloads it on its next
        # replication request; the proxy reloads every 15 s, so restart it instead of waiting
        os.replace(staged, cluster.layout.ring_dir / "object.ring")
        cluster.restart_proxy()
        conn = cluster.connection()

        failures: list[str] = []
        stop = threading.Event()

        def reader() -> None:
            c = cluster.connection()
            while not stop.is_set():
                for w in written:
                    try:
                        if c.get_object("c", w.name)[1] != w.body:
                            failures.append(f"{w.name}: wrong bytes")
                    except Exception as exc:
                        failures.append(f"{w.name}: {exc}")

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            rounds = replicate_until_quiet(cluster)
        finally:
            stop.set()
            t.join(60)
        assert not failures, failures[:5]
        assert sum(s["partitions_dropped"] for r in rounds for s in r) > 0  # old copies reverted and dropped
        assert sum(s["ring_mismatch"] for r in rounds for s in r) == 0
        check_replicas(cluster, "AUTH_test", written)
        assert handoff_leftovers(cluster) == []
        new_drives = [Path(p) for _d, p in cluster.layout.nodes[-1].drives]
        assert any(any((d / "objects").rglob("*.data")) for d in new_drives)
    finally:
        cluster.stop()


def test_nodes_on_different_ring_versions_never_drop(tmp_path):
    """A replicator whose ring differs from the storage nodes' is refused
    (409 on every replication verb) and so never drops a partition: two
    nodes never revert one partition to each other at once."""
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=2, part_power=4, proxy=True)
    try:
        conn = cluster.connection()
        conn.put_container("c")
        for i in range(12):
            conn.put_object("c", f"o{i}", os.urandom(300))
        staged = _add_node(cluster, time.time())
        # the replicators load the new ring from a private copy; the nodes keep the old file
        private = tmp_path / "private-rings"
        private.mkdir()
        shutil.copy(staged, private / "object.ring")
        async def main() -> list[dict]:
            out = []
            for node in cluster.layout.nodes[:4]:
                rep = ObjectReplicator(Ring(private / "object.ring", cluster.hash_secret),
                                       {d: Path(p) for d, p in node.drives}, ("127.0.0.1", node.port))
                out.append((await rep.run_pass()).as_dict())
            return out

        stats = trio.run(main)
        assert sum(s["ring_mismatch"] for s in stats) > 0
        assert sum(s["partitions_dropped"] + s["files_sent"] for s in stats) == 0
        again = replicate_in_process(cluster)  # replicators back on the nodes' ring: accepted
        assert sum(s["ring_mismatch"] for s in again) == 0
    finally:
        cluster.stop()
