"""A container database on a handoff drive (written there while a primary was
unreachable) is pushed to every primary and removed from the handoff only
after every primary acknowledged it (invariant 3): with one primary down it
stays; once all primaries hold its rows it is dropped, and every primary
lists the union of the rows.
"""

from __future__ import annotations

import json
import os

from common.timestamp import Timestamp
from tests.fault import _dbs
from tests.support.cluster import start_cluster

ACCOUNT = "AUTH_test"


def _node_of(cluster, device: str) -> int:
    for i, node in enumerate(cluster.layout.nodes):
        if any(dev == device for dev, _ in node.drives):
            return i
    raise KeyError(device)


def _info(dev, part: int, container: str) -> int:
    status, _, _ = _dbs.backend(dev.port, "REPLICATE", f"/{dev.device}/{part}/{ACCOUNT}/{container}",
                                {"X-Backend-Type": "container"}, b'{"op": "info"}')
    return status


def test_handoff_database_reverts_and_is_dropped_only_when_all_primaries_have_it(tmp_path) -> None:
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=1)
    try:
        conn = cluster.connection()
        conn.put_container("h")
        conn.put_object("h", "on-primaries", b"x")
        ring = _dbs.rings(cluster)["container"]
        part, primaries = ring.get_nodes(ACCOUNT, "h")
        handoff = next(iter(ring.get_more_nodes(part)))
        assert handoff.device not in {d.device for d in primaries}
        # a copy of the database on the handoff, with rows the primaries lack
        ts = Timestamp.from_seconds(1_700_000_000)
        base = f"/{handoff.device}/{part}/{ACCOUNT}/h"
        assert _dbs.backend(handoff.port, "PUT", base, {"X-Timestamp": ts.internal})[0] in (201, 202)
        for i in range(3):
            status, _, _ = _dbs.backend(handoff.port, "PUT", f"{base}/from-handoff-{i}", {
                "X-Backend-Type": "container", "X-Timestamp": Timestamp.from_seconds(1_800_000_000 + i).internal,
                "X-Size": "1", "X-Content-Type": "text/plain", "X-Etag": "e"})
            assert status == 201
        want = sorted(["on-primaries", *(f"from-handoff-{i}" for i in range(3))])

        down = _node_of(cluster, primaries[2].device)
        cluster.kill_node(down)
        out = _dbs.run_daemons(cluster, ("container",))
        assert sum(r["handoffs"] for r in out["container"]) == 1
        assert sum(r["handoffs_dropped"] for r in out["container"]) == 0
        assert _info(handoff, part, "h") == 200, "dropped before every primary had it"
        listings = _dbs.container_listings(cluster, ACCOUNT, "h")
        assert listings[primaries[0].device] == want and listings[primaries[1].device] == want

        cluster.restart_node(down)
        out = _dbs.run_daemons(cluster, ("container",))
        assert sum(r["handoffs_dropped"] for r in out["container"]) == 1, out
        assert _info(handoff, part, "h") == 404
        assert _dbs.container_listings(cluster, ACCOUNT, "h") == {d.device: want for d in primaries}
        status, body, _ = _dbs.backend(handoff.port, "REPLICATE", f"/{handoff.device}/{part}",
                                       {"X-Backend-Type": "container"})
        assert status == 200 and f"{ACCOUNT}/h" not in json.loads(body)
        out = _dbs.run_daemons(cluster, ("container",))
        assert not any(r["changed"] for r in out["container"])
    finally:
        cluster.stop()


def test_a_primary_drive_answering_507_is_stood_in_for_by_a_handoff(tmp_path) -> None:
    """A primary whose drive is gone (507) is replaced by the next handoff
    device for the pass (as Swift), so the database keeps N copies; once the
    drive is back the stand-in reverts its rows and drops itself."""
    cluster = start_cluster(tmp_path, nodes=4, drives_per_node=1)
    try:
        conn = cluster.connection()
        conn.put_container("u")
        ring = _dbs.rings(cluster)["container"]
        part, primaries = ring.get_nodes(ACCOUNT, "u")
        gone = primaries[2]
        path = next(p for n in cluster.layout.nodes for d, p in n.drives if d == gone.device)
        moved = f"{path}.away"
        os.rename(path, moved)  # the drive is missing: its node answers 507 for it
        conn.put_object("u", "while-away", b"x")
        out = _dbs.run_daemons(cluster, ("container",))
        assert sum(r["handoffs_used"] for r in out["container"]) >= 1
        spare = next(d for d in ring.get_more_nodes(part) if d.device not in {p.device for p in primaries})
        assert _info(spare, part, "u") == 200, "no stand-in copy on the first handoff"

        os.rename(moved, path)
        _dbs.run_until_quiet(cluster, ("container",))
        assert _info(spare, part, "u") == 404, "the stand-in was not dropped after the drive came back"
        assert _dbs.container_listings(cluster, ACCOUNT, "u") == {d.device: ["while-away"] for d in primaries}
    finally:
        cluster.stop()
