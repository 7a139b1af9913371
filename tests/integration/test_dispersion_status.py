"""``ringstack dispersion`` and ``ringstack status`` against a real cluster
(real processes, the commands run as the operator runs them).

Dispersion is 100% on a healthy cluster; after one node's drive is wiped it
drops below 100% and names exactly the replicas that drive held; after the
object and container replicators run it is back to 100% (invariant 1: all N
primaries hold every object again). ``status --json`` has one entry per node
and drive with up/down, usage, async pendings, quarantined files and the
last replication passes the daemons recorded.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from tests.fault import _dbs
from tests.fault._objects import replicate_until_quiet
from tests.support.cluster import start_cluster
from tests.support.procs import REPO, ringstack_argv


def _run(*args: str) -> dict:
    done = subprocess.run(ringstack_argv(*args), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _dispersion(cluster) -> dict:
    """The same report in this process (a CLI start costs seconds on a busy machine)."""
    import trio

    from common.config import load_config
    from replicator.dispersion import Dispersion, load_rings

    rings = load_rings(load_config(cluster.config_path))
    return trio.run(lambda: Dispersion(rings).report(None, False))


def test_dispersion_and_status(tmp_path) -> None:
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=1, proxy=False)
    cfg = str(cluster.config_path)
    try:
        healthy = _run("dispersion", "--config", cfg, "--json")
        assert healthy["populated"]["failed"] == 0 and healthy["populated"]["written"] > 0
        for kind in ("object", "container"):
            assert healthy[kind]["pct_found"] == 100.0 and healthy[kind]["missing"] == []
            assert healthy[kind]["sampled"] == 64  # part power 6: every partition sampled
        again = _dispersion(cluster)
        assert "populated" not in again and again["object"]["pct_found"] == 100.0

        # wipe node 0's drive (a replaced disk) and bring the node back empty
        (device, path), = cluster.layout.nodes[0].drives
        cluster.kill_node(0)
        shutil.rmtree(path)
        (tmp_path / "cluster" / "node1" / device).mkdir()
        cluster.restart_node(0)
        wiped = _dispersion(cluster)
        label = f"127.0.0.1:{cluster.node_port(0)}/{device}"
        for kind in ("object", "container"):
            r = wiped[kind]
            assert r["pct_found"] < 100.0, r
            assert r["missing"] and all(m["missing"] == [label] for m in r["missing"]), r["missing"][:3]
            assert r["copies_found"] == r["copies_expected"] - len(r["missing"])

        # one node's container replicator through the CLI (--once), then every
        # node's replicators until quiet: full dispersion again
        one = _run("serve", "container-replicator", "--config", cfg, "--drives",
                   cluster.layout.nodes[1].drives_arg, "--once")
        assert one["dbs"] > 0 and one["peer_errors"] == 0
        replicate_until_quiet(cluster)
        _dbs.run_daemons(cluster, ("container", "account"))
        healed = _dispersion(cluster)
        assert healed["object"]["pct_found"] == 100.0 and healed["container"]["pct_found"] == 100.0

        cluster.kill_node(3)
        status = _run("status", "--config", cfg, "--json")
        nodes = status["nodes"]
        assert [n["host"] for n in nodes] == ["node1", "node2", "node3", "node4"]
        assert [n["up"] for n in nodes] == [True, True, True, False]
        for n in nodes:
            (d,) = n["drives"]
            assert d["present"] is True and d["usage"]["total"] > 0 and d["usage"]["index_bytes"] > 0
            assert isinstance(d["async_pending"], int) and isinstance(d["quarantined"], int)
        rep = nodes[1]["drives"][0]["replication"]["container-replicator"]
        assert rep["node"] == f"127.0.0.1:{cluster.node_port(1)}" and rep["dbs"] == one["dbs"]
        assert rep["age"] >= 0 and rep["duration"] >= 0
        assert status["summary"]["nodes_up"] == 3
    finally:
        cluster.stop()
