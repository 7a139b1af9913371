"""FAULTS.md 3 with real processes: a storage node SIGKILLs itself at an
injected point of writing its replica of a PUT (``[storage]
fault_injection``; ``.fault-crash-<point>`` in the drive root): before the
temp file's fsync, between fsync and rename, or between the rename (with its
directory fsync) and the index commit. Each point is hit twice: overwriting
an object (the index still names the old file) and writing a new one (a
file without a row).

Invariants: 1 (no ack before file and directory fsync: the crashing node
dies before answering, the client's 201 comes from the W others, which hold
the new ``.data`` on disk), 5 (after the restart the node serves the old
version, the new one whole, or nothing, never a short file; its temp file
is gone), 3 (index and files agree after the auditor; a row missing behind a
renamed file is rebuilt by the first GET). Then replication until quiet and
G1, G4 (no temp files or handoffs; the listing equals the live objects)."""

from __future__ import annotations

import os

import pytest

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


def _datas(names: list[str]) -> list[str]:
    return [n for n in names if n.endswith(".data")]


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

        for name, old in (("o", v1), (new, None)):
            part, primaries, rel = placement(cluster, "c", name)
            before = _datas(files_in(drive, rel))
            body = os.urandom(5000 + len(written))
            arm(drive, f"crash-{point}")
            conn.put_object("c", name, body)  # 201 from the two other primaries (W = 2)
            written.append(Written("c", name, body, "ok"))
            assert cluster.nodes[k] is not None
            assert cluster.nodes[k].proc.wait(timeout=15) is not None  # it crashed at the point
            cluster.kill_node(k)
            assert not (drive / f".fault-crash-{point}").exists()  # consumed
            for dev in primaries:  # the acknowledged copies are durable where they answered
                if dev != device:
                    assert len(_datas(files_in(node_of(cluster, dev)[1], rel))) == 1

            # the crashed drive, before any restart
            datas = _datas(files_in(drive, rel))
            row = index_row(drive, part, rel)
            if renamed:  # renamed and directory fsynced, but neither settled nor indexed
                assert temp_files(drive) == []
                assert len(datas) == len(before) + 1
                assert row == (tuple(before) if old is not None else None)
            else:  # nothing visible: the old file only, the body in a temp file
                assert temp_files(drive), "no temp file left: the crash point was not reached"
                assert datas == before
                assert row == (tuple(before) if old is not None else None)

            cluster.restart_node(k)
            assert temp_files(drive) == []  # the dead writer's temp file is removed at start
            status, got, _ = backend_get(cluster.node_port(k), device, part, ACCOUNT, "c", name)
            if old is None and not renamed:
                assert status == 404
            elif old is None:  # the first GET rebuilds the missing row from the files
                assert (status, got) == (200, body)
                assert index_row(drive, part, rel) == tuple(_datas(files_in(drive, rel)))
            else:  # old or new, whole: never a short file
                assert status == 200 and got in (old, body), (status, len(got))
                if renamed:  # the row still names the old file beside the new one: the auditor's job
                    assert index_row(drive, part, rel) != tuple(files_in(drive, rel))

        audit_node(cluster, k)
        for w in written:
            part, _, rel = placement(cluster, "c", w.name)
            assert index_row(drive, part, rel) == (tuple(files_in(drive, rel)) or None)

        replicate_until_quiet(cluster)
        check_replicas(cluster, ACCOUNT, written)  # G1 on every primary, on disk
        assert handoff_leftovers(cluster) == []  # G4
        latest = {w.name: w.body for w in written}
        check_listings(cluster, "c", set(latest))
        assert {o["name"] for o in conn.get_container("c")[1]} == set(latest)
        for name, body in latest.items():
            assert conn.get_object("c", name)[1] == body
    finally:
        cluster.stop()
