"""FAULTS.md 3 with real processes: a storage node SIGKILLs itself at an
injected point of writing its replica of a PUT (``[storage]
fault_injection``; ``.fault-crash-<point>`` in the drive root): before the
temp file's fsync, between fsync and rename, or between the rename (with its
directory fsync) and the index commit. Each point is hit three times:
overwriting an object (the index still names the old file), writing a new
one (a file without a row) and deleting (a tombstone behind a row that
names the data).

Invariants: 1 (no ack before file and directory fsync: the crashing node
dies before answering, the client's 201 comes from the W others, which hold
the new ``.data`` on disk), 5 (after the restart the node serves the old
version, the new one whole, or nothing, never a short file; its temp file
is gone), 3 (index and files agree after the auditor or after the first
GET, which compares the row with the hash directory's listing), 2 (once a
tombstone is renamed in, the deleted data is never served, not even by the
crashed node with its lagging row). Then replication until quiet and
G1, G4 (no temp files or handoffs; the listing equals the live objects)."""

from __future__ import annotations

import os

import pytest
from swiftclient.exceptions import ClientException

from tests.fault._inject import (
    ACCOUNT,
    arm,
    audit_node,
    check_listings,
    faulty_cluster,
    files_in,
    index_row,
    name_on,
    node_of,
    placement,
    temp_files,
)
from tests.fault._objects import (
    Written,
    backend_get,
    check_replicas,
    handoff_leftovers,
    replicate_until_quiet,
)

POINTS = ("before-fsync", "after-fsync-before-rename", "after-rename-before-index")


@pytest.mark.parametrize("point", POINTS)
def test_crash_at_injected_point(tmp_path, point):
    renamed = point == "after-rename-before-index"
    cluster = faulty_cluster(tmp_path)
    try:
        conn = cluster.connection()
        conn.put_container("c")
        v1 = os.urandom(3000)
        conn.put_object("c", "o", v1)
        written = [Written("c", "o", v1, "ok")]
        device = placement(cluster, "c", "o")[1][0]
        k, drive = node_of(cluster, device)
        new = name_on(cluster, "c", device, "n")

        # (name, old bytes held before, new body; None: a DELETE)
        phases = [("o", v1, os.urandom(5001)), (new, None, os.urandom(5002)), ("o", None, None)]
        for name, old, body in phases:
            part, primaries, rel = placement(cluster, "c", name)
            before = files_in(drive, rel)
            arm(drive, f"crash-{point}")
            if body is None:  # delete "o" (whichever version this node holds): 204 from the two others
                old = backend_get(cluster.node_port(k), device, part, ACCOUNT, "c", name)[1]
                conn.delete_object("c", name)
            else:  # 201 from the two other primaries (W = 2)
                conn.put_object("c", name, body)
                written.append(Written("c", name, body, "ok"))
            assert cluster.nodes[k] is not None
            assert cluster.nodes[k].proc.wait(timeout=15) is not None  # it crashed at the point
            cluster.kill_node(k)
            assert not (drive / f".fault-crash-{point}").exists()  # consumed
            for dev in primaries:  # the acknowledged copies are durable where they answered
                if dev != device:
                    assert len(files_in(node_of(cluster, dev)[1], rel)) == 1

            # the crashed drive, before any restart
            names = files_in(drive, rel)
            row = index_row(drive, part, rel)
            if renamed:  # renamed and directory fsynced, but neither settled nor indexed
                assert temp_files(drive) == []
                assert len(names) == len(before) + 1
            else:  # nothing visible: the old file only, the body in a temp file
                assert temp_files(drive), "no temp file left: the crash point was not reached"
                assert names == before
            assert row == (tuple(before) if before else None)

            cluster.restart_node(k)
            assert temp_files(drive) == []  # the dead writer's temp file is removed at start
            if body is None and renamed:
                # a durable tombstone behind a row that names the data: the
                # auditor reconciles (the next GET would too)
                assert index_row(drive, part, rel) != tuple(files_in(drive, rel))
                audit_node(cluster, k)
                assert index_row(drive, part, rel) == tuple(files_in(drive, rel))
            status, got, _ = backend_get(cluster.node_port(k), device, part, ACCOUNT, "c", name)
            if not renamed:  # old version or nothing, whole
                if old is None:
                    assert status == 404
                else:
                    assert (status, got) == (200, old), (status, len(got))
            elif body is None:  # never the deleted data once its tombstone is on disk
                assert status == 404
                with pytest.raises(ClientException):  # through the proxy either (R = 1)
                    conn.get_object("c", name)
            else:  # the new version, whole; the first GET rebuilt the lagging row from the files
                assert (status, got) == (200, body), (status, len(got))
            assert index_row(drive, part, rel) == (tuple(files_in(drive, rel)) or None)

        audit_node(cluster, k)
        for w in written:
            part, _, rel = placement(cluster, "c", w.name)
            assert index_row(drive, part, rel) == (tuple(files_in(drive, rel)) or None)

        replicate_until_quiet(cluster)
        check_replicas(cluster, ACCOUNT, written, deleted={"o"})  # G1 on every primary, on disk
        assert handoff_leftovers(cluster) == []  # G4
        check_listings(cluster, "c", {new})
        assert {o["name"] for o in conn.get_container("c")[1]} == {new}
        assert conn.get_object("c", new)[1] == written[-1].body
        with pytest.raises(ClientException):
            conn.get_object("c", "o")
    finally:
        cluster.stop()
