"""FAULTS.md 10 / issue 5 fault test 3: flip a byte in one replica on disk,
and delete a replica's file behind the index's back.

Invariant 3: GET never returns the bad bytes (the corrupt replica is
quarantined on read and the proxy falls back to another); the auditor
(``ringstack serve auditor --once``) quarantines a corrupt replica nobody
read; the replicator restores both, and finds a file lost behind the index
on its full-rehash pass (every ``--once`` pass is one; the daemon does one
every ``rehash_interval`` passes: the stated bound)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.fault._objects import (
    Written,
    check_replicas,
    drive_path,
    handoff_leftovers,
    replicate_until_quiet,
    ring,
)
from tests.support.cluster import start_cluster
from tests.support.procs import REPO, ringstack_argv


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x5A]))


def _node_of(cluster, path: Path) -> int:
    for i, node in enumerate(cluster.layout.nodes):
        if any(path.is_relative_to(p) for _d, p in node.drives):
            return i
    raise AssertionError(path)


def test_bitrot_is_never_served_and_is_repaired(tmp_path):
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=2, part_power=4)
    try:
        conn = cluster.connection()
        conn.put_container("c")
        written = [Written("c", n, os.urandom(3000 + i), "ok") for i, n in enumerate(["read", "audited", "lost"])]
        for w in written:
            conn.put_object("c", w.name, w.body)

        # 1. corrupt the replica the proxy reads first (ring order): the read
        # falls back to another replica, never serves bad bytes, quarantines it
        part, primaries = ring(cluster).get_nodes("AUTH_test", "c", "read")
        first = next(p for p in cluster.object_files("AUTH_test", "c", "read", ".data")
                     if p.is_relative_to(drive_path(cluster, primaries[0].device)))
        _flip(first, 100)
        for _ in range(3):
            assert conn.get_object("c", "read")[1] == written[0].body
        assert not first.exists()  # quarantined on that first read

        # 1b. corrupt a later chunk of a large object's first replica: the
        # node has already answered 200 and the proxy relays its body
        # (spliced), so the client must see a body cut short, never a clean
        # end; the replica is quarantined and the next read comes whole
        # from another one
        big = os.urandom(3 * (1 << 20) + 5)
        conn.put_object("c", "big", big)
        part, primaries = ring(cluster).get_nodes("AUTH_test", "c", "big")
        first = next(p for p in cluster.object_files("AUTH_test", "c", "big", ".data")
                     if p.is_relative_to(drive_path(cluster, primaries[0].device)))
        _flip(first, 2 * (1 << 20) + 1000)
        url, token = conn.get_auth()
        target = urlsplit(url)
        raw = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        raw.request("GET", f"{target.path}/c/big", headers={"X-Auth-Token": token})
        resp = raw.getresponse()
        assert resp.status == 200 and resp.getheader("content-length") == str(len(big))
        with pytest.raises(http.client.IncompleteRead) as cut:
            resp.read()
        assert cut.value.partial == big[: len(cut.value.partial)]  # what came before the bad chunk is good
        assert len(cut.value.partial) <= 2 * (1 << 20)
        raw.close()
        assert not first.exists()
        assert conn.get_object("c", "big")[1] == big
        written.append(Written("c", "big", big, "ok"))

        # 2. corrupt one replica of "audited": the auditor finds it without any read
        bad = cluster.object_files("AUTH_test", "c", "audited", ".data")[0]
        _flip(bad, 7)
        node = cluster.layout.nodes[_node_of(cluster, bad)]
        done = subprocess.run(ringstack_argv("serve", "auditor", "--config", str(cluster.config_path), "--drives",
                                             node.drives_arg, "--once", "--log-level", "WARNING"),
                              capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1])["quarantined"] == 1
        assert not bad.exists()
        assert list(Path(str(bad).split("/objects/")[0], "quarantined").rglob("*.data"))

        # 3. a replica's file deleted behind the index's back
        lost = cluster.object_files("AUTH_test", "c", "lost", ".data")[0]
        lost.unlink()

        rounds = replicate_until_quiet(cluster)
        assert all(s["full_rehash"] for s in rounds[0])
        # one replica of each restored; not necessarily in the first round: a
        # peer may answer REPLICATE from its cached hashes before its own
        # full rehash notices the lost file, and primaries only push
        assert sum(s["files_sent"] for r in rounds for s in r) >= 3
        check_replicas(cluster, "AUTH_test", written)
        assert handoff_leftovers(cluster) == []
        for w in written:
            assert conn.get_object("c", w.name)[1] == w.body
    finally:
        cluster.stop()
