"""FAULTS.md 11 with real processes: one drive runs out of space during PUTs
(``[storage] fault_injection``; ``<drive>/.fault-enospc`` = a temp file may
hold 4096 bytes, then ``write`` raises ENOSPC, after the node's reserve check
passed: the race the reserve cannot catch).

Invariants: 5 (the full drive answers 507 with a body saying why, for a
small body read whole and for a streamed one, and leaves no temp file and
nothing visible; the node's other drive still serves), 1 (the client's PUT
succeeds at W through the other primaries, and a PUT that meets a full drive
on every primary fails cleanly: 5xx, no data anywhere, never a false 2xx),
2 (a DELETE still works on the full drive: its small tombstone fits). After
healing, replication until quiet: G1 on every primary (the full drive gets
its copy), G2/G3 (the failed PUT is absent everywhere), G4 (no temp files,
no handoffs, every listing equals the live objects)."""

from __future__ import annotations

import http.client
import os
import time
from urllib.parse import quote

import pytest
from swiftclient.exceptions import ClientException

from tests.fault._inject import (
    ACCOUNT,
    arm,
    check_listings,
    faulty_cluster,
    files_in,
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


def _backend(port: int, method: str, device: str, part: int, name: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, quote(f"/{device}/{part}/{ACCOUNT}/c/{name}"), body=body,
                     headers={"X-Timestamp": f"{time.time():.5f}", "Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_enospc_on_one_drive(tmp_path):
    cluster = faulty_cluster(tmp_path)
    try:
        conn = cluster.connection()
        conn.put_container("c")
        part, primaries, rel = placement(cluster, "c", "big")
        device = primaries[0]
        k, drive = node_of(cluster, device)
        victim = name_on(cluster, "c", device, "victim")
        written = [Written("c", victim, os.urandom(2000), "ok")]
        conn.put_object("c", victim, written[0].body)
        arm(drive, "enospc", "4096")

        # the full drive itself: 507 saying why, no temp file, nothing visible
        for size in (64 << 10, 3 << 20):  # read whole / streamed in batches
            status, why = _backend(cluster.node_port(k), "PUT", device, part, "big", os.urandom(size))
            assert status == 507 and b"No space left" in why, (size, status, why)
            assert temp_files(drive) == []
            assert files_in(drive, rel) == []
        other = next(d for d, _ in cluster.layout.nodes[k].drives if d != device)
        assert backend_get(cluster.node_port(k), other, part, ACCOUNT, "c", "big")[0] == 404  # that drive only

        # through the proxy: 201 at W from the other primaries
        big = os.urandom(64 << 10)
        conn.put_object("c", "big", big)
        written.append(Written("c", "big", big, "ok"))
        assert files_in(drive, rel) == [] and temp_files(drive) == []
        holders = [d for d in primaries if d != device if files_in(node_of(cluster, d)[1], rel)]
        assert len(holders) >= 2
        assert conn.get_object("c", "big")[1] == big

        # deletes still work: through the proxy (which error-limited the full
        # drive on its 507, so a handoff stands in) and on the full drive itself
        conn.delete_object("c", victim)
        vpart, _, vrel = placement(cluster, "c", victim)
        assert len({p.parent for p in cluster.object_files(ACCOUNT, "c", victim, ".ts")}) >= 2
        status, _ = _backend(cluster.node_port(k), "DELETE", device, vpart, victim, b"")
        assert status == 204
        assert [f for f in files_in(drive, vrel) if f.endswith(".ts")], files_in(drive, vrel)
        assert temp_files(drive) == []

        # every drive full: the PUT fails cleanly, nothing anywhere
        sentinels = [arm(d, "enospc", "4096") for d in cluster.drive_paths()]
        with pytest.raises(ClientException) as exc:
            conn.put_object("c", "doomed", os.urandom(32 << 10))
        assert exc.value.http_status >= 500
        assert cluster.object_files(ACCOUNT, "c", "doomed") == []
        assert all(temp_files(d) == [] for d in cluster.drive_paths())
        with pytest.raises(ClientException) as exc:
            conn.get_object("c", "doomed")
        assert exc.value.http_status == 404

        for s in sentinels:  # heal
            s.unlink()
        replicate_until_quiet(cluster)
        assert len([f for f in files_in(drive, rel) if f.endswith(".data")]) == 1  # the full drive got its copy
        check_replicas(cluster, ACCOUNT, written, deleted={victim})  # G1, on disk per primary
        assert cluster.object_files(ACCOUNT, "c", "doomed") == []  # G2/G3
        assert handoff_leftovers(cluster) == []  # G4
        check_listings(cluster, "c", {"big"})
        assert conn.get_object("c", "big")[1] == big
    finally:
        cluster.stop()
