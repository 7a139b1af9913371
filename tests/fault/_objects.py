"""Helpers of the object fault tests: run the real replicator processes
until quiet, and the FAULTS.md global checks on the replicas on disk (a local
dispersion-style check over the ring: every primary asked directly through
the backend API, and its files looked at on its drive)."""

from __future__ import annotations

import http.client
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ring.hashing import object_hash
from ring.lookup import Ring
from storage_node.paths import object_dir
from tests.support.cluster import Cluster
from tests.support.procs import ringstack_argv


@dataclass
class Written:
    """What the client was told about one PUT: ok (2xx), fail (4xx), info."""

    container: str
    name: str
    body: bytes
    outcome: str  # ok | fail | info


def ring(cluster: Cluster) -> Ring:
    return Ring(cluster.layout.ring_dir / "object.ring", cluster.hash_secret, reload_interval=0.0)


def drive_path(cluster: Cluster, device: str) -> Path:
    for node in cluster.layout.nodes:
        for dev, path in node.drives:
            if dev == device:
                return Path(path)
    raise KeyError(device)


def _live(cluster: Cluster) -> list[int]:
    return [i for i in range(len(cluster.layout.nodes)) if cluster.nodes[i] is not None]


def replicate_in_process(cluster: Cluster, nodes: list[int] | None = None, **settings: object) -> list[dict]:
    """One pass of every live node's replicator, all at once in this process
    (the real ``ObjectReplicator`` against the real servers; a process start
    costs ~2 s of CPU on a busy machine, a pass a tenth of that). A fresh
    replicator per call, so each pass is a full rehash as with ``--once``."""
    import trio

    from replicator.object_replicator import ObjectReplicator, ReplicatorSettings

    idx = _live(cluster) if nodes is None else nodes
    out: dict[int, dict] = {}

    async def main() -> None:
        async def one(i: int) -> None:
            node = cluster.layout.nodes[i]
            rep = ObjectReplicator(ring(cluster), {d: Path(p) for d, p in node.drives}, ("127.0.0.1", node.port),
                                   ReplicatorSettings(**settings))  # type: ignore[arg-type]
            out[i] = (await rep.run_pass()).as_dict()

        async with trio.open_nursery() as nursery:
            for i in idx:
                nursery.start_soon(one, i)

    trio.run(main)
    return [out[i] for i in idx]


def replicate_once(cluster: Cluster, nodes: list[int] | None = None, extra: tuple[str, ...] = ()) -> list[dict]:
    """One pass of every live node's replicator, as real processes in parallel
    (``ringstack serve replicator --once``)."""
    idx = _live(cluster) if nodes is None else nodes

    def run(i: int) -> dict:
        node = cluster.layout.nodes[i]
        argv = ringstack_argv("serve", "replicator", "--config", str(cluster.config_path), "--drives",
                              node.drives_arg, "--once", "--log-level", "WARNING", *extra)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
        assert done.returncode == 0, f"replicator {node.name} failed:\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(len(idx) or 1) as pool:
        return list(pool.map(run, idx))


def replicate_until_quiet(cluster: Cluster, max_rounds: int = 6) -> list[list[dict]]:
    """Passes on every live node until a round changes nothing (FAULTS.md)."""
    rounds = []
    for _ in range(max_rounds):
        rounds.append(replicate_in_process(cluster))
        if not any(r["changed"] for r in rounds[-1]):
            return rounds
    raise AssertionError(f"replication not quiet after {max_rounds} rounds: {rounds[-1]}")


def backend_get(port: int, device: str, part: int, account: str, container: str, name: str,
                ) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", quote(f"/{device}/{part}/{account}/{container}/{name}"))
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def check_replicas(cluster: Cluster, account: str, written: list[Written], deleted: set[str] = frozenset(),
                   ) -> None:
    """G1/G3 per replica: every ``ok`` object (last write per name) is served
    byte-identical by each of its N primaries, each holding exactly one
    ``.data`` with the same timestamp; ``info`` writes are whole or absent."""
    r = ring(cluster)
    latest: dict[tuple[str, str], Written] = {}
    for w in written:
        if w.outcome == "ok" or (w.container, w.name) not in latest:
            latest[(w.container, w.name)] = w
    problems = []
    for (c, name), w in latest.items():
        if w.outcome == "fail":
            continue
        part, primaries = r.get_nodes(account, c, name)
        rel = object_dir(part, object_hash(cluster.hash_secret, account, c, name))
        datas = []
        for dev in primaries:
            status, body, hdrs = backend_get(dev.port, dev.device, part, account, c, name)
            files = sorted(p.name for p in (drive_path(cluster, dev.device) / rel).glob("*.data"))
            datas.append(tuple(files))
            if name in deleted:
                if status != 404:
                    problems.append(f"{c}/{name}: deleted but {dev.device} answers {status}")
                continue
            if w.outcome == "ok" and (status != 200 or body != w.body):
                problems.append(f"{c}/{name}: replica on {dev.device} answers {status}, "
                                f"{'same' if body == w.body else 'different'} bytes")
            if w.outcome == "info" and status == 200 and body != w.body:
                problems.append(f"{c}/{name}: info write torn on {dev.device}")
        if name not in deleted and w.outcome == "ok" and (len(set(datas)) != 1 or len(datas[0]) != 1):
            problems.append(f"{c}/{name}: .data files differ across primaries: {datas}")
        if w.outcome == "info" and len(set(datas)) != 1:
            problems.append(f"{c}/{name}: info write not all-or-nothing: {datas}")
    assert not problems, "\n".join(problems[:20])


def handoff_leftovers(cluster: Cluster) -> list[str]:
    """G4: non-empty partition directories on drives that are not among
    that partition's primaries, and temp files anywhere."""
    r = ring(cluster)
    out = []
    for node in cluster.layout.nodes:
        for dev, path in node.drives:
            objects = Path(path) / "objects"
            if objects.is_dir():
                for pdir in objects.iterdir():
                    if not pdir.name.isdigit() or not any(pdir.rglob("*.*")):
                        continue
                    prim = {d.device for d in r.get_part_nodes(int(pdir.name))}
                    if dev not in prim:
                        out.append(f"{dev}: partition {pdir.name} (primaries {sorted(prim)})")
            tmp = Path(path) / "tmp"
            if tmp.is_dir():
                out += [f"{dev}: temp file {p.name}" for p in tmp.rglob("*") if p.is_file()]
    return out
