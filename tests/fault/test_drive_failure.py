"""FAULTS.md 11 (drive side) / issue 5 fault test 5: a drive is pulled out of
a running node (its directory disappears, so the node answers 507 for it
and only for it).

Invariant 1: nothing acknowledged is lost: objects written before and
during the failure stay readable; the replicator of each other primary,
told 507 by the failed drive, pushes the partition to the first usable
handoff, so every acknowledged object is back at N copies while the drive
is gone. A fresh empty drive then goes in (the node restarts with it) and
replication restores full dispersion on the primaries (the
``ringstack dispersion`` object sample, placed before the failure, is 100%
again) and empties the handoffs (G1, G4)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.fault._objects import Written, check_replicas, handoff_leftovers, replicate_until_quiet
from tests.support.cluster import start_cluster
from tests.support.procs import REPO, ringstack_argv

NODE, DRIVE = 2, 0


def _dispersion(cluster, *extra: str) -> dict:
    done = subprocess.run(ringstack_argv("dispersion", "--config", str(cluster.config_path), "--json", *extra),
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def _copies(cluster, w: Written) -> int:
    return len({p.parent for p in cluster.object_files("AUTH_test", w.container, w.name, ".data")})


def test_pulled_drive_is_replaced_by_handoffs_then_refilled(tmp_path):
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=2, part_power=4)
    try:
        populate = _dispersion(cluster, "--populate")  # the sample lands on every primary, the doomed drive too
        assert populate["object"]["pct_found"] == 100.0
        conn = cluster.connection()
        conn.put_container("c")
        written = []

        def put(name: str, size: int) -> None:
            body = os.urandom(size)
            conn.put_object("c", name, body)
            written.append(Written("c", name, body, "ok"))

        for i in range(24):
            put(f"before-{i}", 200 + i)
        device, path = cluster.layout.nodes[NODE].drives[DRIVE]
        drive = Path(path)
        on_drive = [w.name for w in written if any(p.is_relative_to(drive) for p in
                                                    cluster.object_files("AUTH_test", "c", w.name))]
        assert on_drive
        drive.rename(drive.with_name(drive.name + ".pulled"))  # the disk is gone: 507 for this drive only
        for i in range(24):
            put(f"during-{i}", 300 + i)
        for w in written:
            assert conn.get_object("c", w.name)[1] == w.body

        replicate_until_quiet(cluster)
        short = [(w.name, _copies(cluster, w)) for w in written if _copies(cluster, w) < 3]
        assert not short, f"objects below 3 copies with {device} gone: {short}"
        assert handoff_leftovers(cluster), "no handoff took over the pulled drive's partitions"

        drive.mkdir()  # a new, empty disk in the slot; the node restarts with it
        cluster.restart_node(NODE)
        replicate_until_quiet(cluster)
        check_replicas(cluster, "AUTH_test", written)
        assert handoff_leftovers(cluster) == []
        report = _dispersion(cluster)  # ringstack dispersion: the sample on the new drive is back
        assert report["object"]["pct_found"] == 100.0, report["object"]["missing"][:5]
        refilled = {w.name for w in written if any(p.is_relative_to(drive) for p in
                                                    cluster.object_files("AUTH_test", "c", w.name))}
        assert set(on_drive) <= refilled
    finally:
        cluster.stop()
