"""``ringstack serve replicator`` as a daemon (what ``ringstack dev up``
starts per node): READY line, /healthcheck, /stats, /metrics, the per-drive
``replication.json`` for ``ringstack status``, and that it actually copies an
object written to one primary only onto the other two (real storage
processes, no proxy)."""

from __future__ import annotations

import http.client
import json
import os
import time
from pathlib import Path

from ring.lookup import Ring
from tests.support.cluster import start_cluster
from tests.support.procs import ringstack_argv, start_server


def _req(port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_daemon_replicates_and_reports(tmp_path):
    cluster = start_cluster(tmp_path, nodes=3, drives_per_node=1, part_power=3, proxy=False)
    daemon = None
    try:
        ring = Ring(cluster.layout.ring_dir / "object.ring", cluster.hash_secret)
        part, devs = ring.get_nodes("AUTH_x", "c", "o")
        body = os.urandom(5000)
        first = devs[0]
        status, _ = _req(first.port, "PUT", f"/{first.device}/{part}/AUTH_x/c/o",
                         {"X-Timestamp": "1700000000.00000", "Content-Type": "x/y"}, body)
        assert status == 201
        i = next(k for k, n in enumerate(cluster.layout.nodes) if n.port == first.port)
        node = cluster.layout.nodes[i]
        daemon = start_server(ringstack_argv("serve", "replicator", "--config", str(cluster.config_path),
                                             "--drives", node.drives_arg, "--port", "0", "--interval", "0.2"))
        assert daemon.role == "replicator"
        deadline = time.monotonic() + 20
        missing = devs[1:]
        while missing and time.monotonic() < deadline:
            missing = [d for d in missing if _req(d.port, "GET", f"/{d.device}/{part}/AUTH_x/c/o")[1] != body]
            time.sleep(0.1)
        assert not missing, "the daemon did not copy the object to the other primaries"
        assert _req(daemon.port, "GET", "/healthcheck")[0] == 200
        stats = json.loads(_req(daemon.port, "GET", "/stats")[1])
        assert stats["passes"] >= 1 and stats["partitions"] >= 1
        metrics = _req(daemon.port, "GET", "/metrics")[1].decode()
        assert "ringstack_replicator_suffixes_synced" in metrics
        on_drive = json.loads((Path(node.drives[0][1]) / "replication.json").read_text())
        assert on_drive["node"] == f"127.0.0.1:{node.port}" and on_drive["partitions"] >= 1
    finally:
        if daemon is not None:
            daemon.stop()
        cluster.stop()
