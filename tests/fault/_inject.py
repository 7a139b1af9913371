"""Helpers of the fault tests that use the storage node's injected faults
(``[storage] fault_injection = true``; sentinel files in a drive root, see
the ``storage_node.drive`` docstring): where an object's replicas live, the
sentinels, the index row of one object on one drive, and an in-process
auditor pass over one node's drives."""

from __future__ import annotations

import os
from pathlib import Path

from ring.hashing import object_hash
from storage_node.paths import object_dir
from tests.fault._objects import ring
from tests.support.cluster import Cluster, start_cluster

ACCOUNT = "AUTH_test"
FAULTY = {"storage": {"fault_injection": True}}


def faulty_cluster(tmp_path: Path) -> Cluster:
    return start_cluster(tmp_path, nodes=4, drives_per_node=2, part_power=4, extra_config=FAULTY)


def node_of(cluster: Cluster, device: str) -> tuple[int, Path]:
    """(node index, drive path) of ``device``."""
    for i, node in enumerate(cluster.layout.nodes):
        for dev, path in node.drives:
            if dev == device:
                return i, Path(path)
    raise KeyError(device)


def placement(cluster: Cluster, container: str, name: str) -> tuple[int, list[str], str]:
    """(partition, primary devices, the object's directory relative to a drive)."""
    part, devs = ring(cluster).get_nodes(ACCOUNT, container, name)
    rel = object_dir(part, object_hash(cluster.hash_secret, ACCOUNT, container, name))
    return part, [d.device for d in devs], rel


def name_on(cluster: Cluster, container: str, device: str, prefix: str) -> str:
    """The first ``<prefix><i>`` whose primaries include ``device``."""
    for i in range(1000):
        if device in placement(cluster, container, f"{prefix}{i}")[1]:
            return f"{prefix}{i}"
    raise AssertionError(f"no name lands on {device}")


def arm(drive: Path, fault: str, content: str = "") -> Path:
    """Create the sentinel ``<drive>/.fault-<fault>``."""
    p = drive / f".fault-{fault}"
    p.write_text(content)
    return p


def temp_files(drive: Path) -> list[str]:
    tmp = drive / "tmp"
    return sorted(p.name for p in tmp.iterdir() if p.is_file()) if tmp.is_dir() else []


def files_in(drive: Path, rel: str) -> list[str]:
    d = drive / rel
    return sorted(os.listdir(d)) if d.is_dir() else []


def index_row(drive: Path, part: int, rel: str) -> tuple[str, ...] | None:
    """The files the drive's LMDB row of the object names (None: no row),
    read with a private read-only environment closed again at once."""
    import json

    import lmdb

    from storage_node.object_core import ObjectRecord

    env = lmdb.open(str(drive / "index.lmdb"), readonly=True, max_dbs=64, subdir=True)
    try:
        db = env.open_db(b"objects", create=False)
        name_hash = rel.rsplit("/", 1)[1]
        suffix = rel.split("/")[2]
        with env.begin(db=db) as txn:
            raw = txn.get(f"{part:08x}/{suffix}/{name_hash}".encode())
        if raw is None:
            return None
        return tuple(sorted(ObjectRecord.from_json(json.loads(raw)).files))
    finally:
        env.close()


def audit_node(cluster: Cluster, i: int) -> dict[str, int]:
    """One pass of the real auditor over node ``i``'s drives, in this process
    (``rehash_from_disk`` reconciles each index with its files)."""
    import trio

    from common.config import load_config
    from storage_node.auditor import audit_pass
    from storage_node.index import forget_env
    from storage_node.server import build_context

    drives = {dev: Path(p) for dev, p in cluster.layout.nodes[i].drives}

    async def main() -> dict[str, int]:
        ctx = build_context(load_config(cluster.config_path), drives)
        return (await audit_pass(ctx, 0.0)).as_dict()

    try:
        return trio.run(main)
    finally:
        for root in drives.values():
            forget_env(root)


def check_listings(cluster: Cluster, container: str, live: set[str]) -> None:
    """G4 listings: after container replication and the updater until quiet
    (a crashed node may have missed or queued its container updates), every
    container replica, asked on its own node, lists exactly ``live``."""
    from tests.fault import _dbs

    _dbs.run_until_quiet(cluster, ("container", "updater"))
    listings = _dbs.container_listings(cluster, ACCOUNT, container)
    assert listings == {d: sorted(live) for d in listings}, listings
