"""``ringstack bench replication``: the object replicator on a real cluster.

Builds a cluster of ``--nodes`` real storage processes (one drive each,
3 replicas, ``--part-power``), writes ``--objects`` objects of ``--size``
bytes straight to their three primaries (backend PUTs, no proxy), then
measures, with the real ``ObjectReplicator`` (what ``ringstack serve
replicator`` runs) in this process:

1. a pass with no changes over every partition of node 0 (index only: one
   ``PARTITIONS``, then a ``REPLICATE`` per partition locally and per peer;
   no directory walk), and the same pass with the full rehash from disk that
   runs every ``rehash_interval`` passes;
2. a pass on node 0 after 1% of its objects were overwritten there only;
3. the time to restore full dispersion after the last node's drive is wiped
   (node restarted on an empty drive; passes on every node until one changes
   nothing; then every partition's three primaries report equal hashes).

With ``--swift`` (default: /work/swift-venv when it exists) the same three
measurements run on Swift's all-in-one with ``swift-object-replicator
--once`` (``benchmarks/_swift_replication.py``), side by side.

Reports wall seconds, bytes sent, suffixes synced and the storage servers'
CPU seconds (all nodes, from /proc). Client and servers share the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from benchmarks._common import emit

HELP = "object replicator: no-change pass, 1% changed, restore after a wiped node"
READY_RE = re.compile(r"^READY (\S+) ([0-9.]+):(\d+)\s*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--objects", type=int, default=5000, help="objects written (default: %(default)s)")
    parser.add_argument("--size", type=int, default=1024, help="bytes per object (default: %(default)s)")
    parser.add_argument("--nodes", type=int, default=4, help="storage nodes, one drive each")
    parser.add_argument("--part-power", type=int, default=6, help="(default: %(default)s, as the Swift run)")
    parser.add_argument("--swift", default="auto", help="Swift venv for the side-by-side run ('no' to skip)")


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(argv: tuple[str, ...]) -> subprocess.Popen[str]:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([*argv, "--log-level", "WARNING"], cwd=repo, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if READY_RE.match(line.strip()):
            return proc
    proc.wait()
    raise RuntimeError(f"{argv} exited {proc.returncode} before READY")


class _Bench:
    def __init__(self, args: argparse.Namespace, data: Path) -> None:
        from cli import _devcluster as dc
        from common.config import load_config
        from ring.lookup import Ring

        self.args = args
        self.layout = dc.ensure_cluster(data, nodes=args.nodes, drives_per_node=1,
                                        storage_ports=dc.free_ports(args.nodes), part_power=args.part_power,
                                        placement_port=0)
        self.secret = load_config(self.layout.config_path).hash_secret
        self.ring = Ring(self.layout.ring_dir / "object.ring", self.secret)
        self.specs = [dc.storage_spec(self.layout, i) for i in range(len(self.layout.nodes))]
        self.procs = [_start(s.argv) for s in self.specs]

    def cpu(self) -> float:
        return sum(_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(30)

    def replicator(self, i: int) -> Any:
        from replicator.object_replicator import ObjectReplicator, ReplicatorSettings

        node = self.layout.nodes[i]
        return ObjectReplicator(self.ring, {d: Path(p) for d, p in node.drives}, ("127.0.0.1", node.port),
                                ReplicatorSettings(concurrency=8, rehash_interval=0))

    def wipe(self, i: int) -> None:
        """Kill node ``i``, replace its drive by an empty one, restart it."""
        self.procs[i].kill()
        self.procs[i].wait()
        drive = Path(self.layout.nodes[i].drives[0][1])
        shutil.rmtree(drive)
        drive.mkdir()
        self.procs[i] = _start(self.specs[i].argv)

    async def put(self, names: list[str], size: int, ts: float, only: int | None = None) -> None:
        from common.http import HTTPClient
        from common.timestamp import Timestamp

        client = HTTPClient()
        limiter = trio.CapacityLimiter(32)
        stamp = Timestamp.from_seconds(ts).internal
        body = os.urandom(size)

        async def one(name: str) -> None:
            part, devs = self.ring.get_nodes("AUTH_bench", "c", name)
            for dev in devs:
                if only is not None and dev.port != self.layout.nodes[only].port:
                    continue
                async with limiter:
                    resp = await client.request("PUT", dev.address, dev.port,
                                                f"/{dev.device}/{part}/AUTH_bench/c/{name}",
                                                {"X-Timestamp": stamp, "Content-Type": "application/octet-stream"},
                                                body, timeout=60)
                    assert resp.status == 201, resp.status

        async with trio.open_nursery() as nursery:
            for n in names:
                nursery.start_soon(one, n)

    async def timed_pass(self, nodes: list[int], full: bool = False) -> dict[str, Any]:
        reps = [self.replicator(i) for i in nodes]
        if full:
            for r in reps:
                r.passes, r.settings = 0, type(r.settings)(concurrency=8, rehash_interval=1)
        out: list[Any] = [None] * len(reps)
        c0, t0, r0 = self.cpu(), time.perf_counter(), time.process_time()

        async def one(k: int) -> None:
            out[k] = await reps[k].run_pass()

        async with trio.open_nursery() as nursery:
            for k in range(len(reps)):
                nursery.start_soon(one, k)
        wall = time.perf_counter() - t0
        return {"seconds": round(wall, 3), "server_cpu_s": round(self.cpu() - c0, 3),
                "replicator_cpu_s": round(time.process_time() - r0, 3),
                "partitions": sum(s.partitions for s in out), "bytes_sent": sum(s.bytes_sent for s in out),
                "suffixes_synced": sum(s.suffixes_synced for s in out), "files_sent": sum(s.files_sent for s in out),
                "changed": any(s.changed for s in out)}

    async def dispersion(self) -> float:
        """Share of partitions whose three primaries report equal hashes."""
        from common.http import HTTPClient

        client = HTTPClient()
        good = 0
        for part in range(self.ring.partitions):
            seen = set()
            for dev in self.ring.get_part_nodes(part):
                resp = await client.request("REPLICATE", dev.address, dev.port, f"/{dev.device}/{part}", timeout=60)
                seen.add(resp.body if resp.status == 200 else b"error")
            good += len(seen) == 1
        return good / self.ring.partitions


async def _main(b: _Bench, args: argparse.Namespace) -> dict[str, Any]:
    names = [f"o{i:08d}" for i in range(args.objects)]
    t0 = time.perf_counter()
    await b.put(names, args.size, time.time())
    res: dict[str, Any] = {"objects": args.objects, "size": args.size, "nodes": args.nodes,
                           "partitions": b.ring.partitions, "write_seconds": round(time.perf_counter() - t0, 2)}
    await b.timed_pass(list(range(args.nodes)))  # warm the suffix-hash caches
    res["no_change_pass_node0"] = await b.timed_pass([0])
    res["no_change_full_rehash_node0"] = await b.timed_pass([0], full=True)
    mine = [n for n in names if any(d.port == b.layout.nodes[0].port for d in b.ring.get_nodes("AUTH_bench", "c", n)[1])]
    changed = random.Random(1).sample(mine, max(1, len(names) // 100))
    await b.put(changed, args.size, time.time() + 1, only=0)
    res["one_percent_changed_pass_node0"] = {"changed_objects": len(changed), **await b.timed_pass([0])}

    b.wipe(len(b.layout.nodes) - 1)
    t0 = time.perf_counter()
    rounds = []
    while len(rounds) < 10:
        rounds.append(await b.timed_pass(list(range(args.nodes))))
        if not rounds[-1]["changed"]:
            break
    res["restore_wiped_node"] = {"seconds": round(time.perf_counter() - t0, 3), "rounds": len(rounds),
                                 "first_round_seconds": rounds[0]["seconds"],
                                 "bytes_sent": sum(r["bytes_sent"] for r in rounds),
                                 "server_cpu_s": round(sum(r["server_cpu_s"] for r in rounds), 3),
                                 "replicator_cpu_s": round(sum(r["replicator_cpu_s"] for r in rounds), 3),
                                 "dispersion": await b.dispersion()}
    return res


def run(args: argparse.Namespace) -> dict[str, Any]:
    parent = Path(tempfile.mkdtemp(prefix="bench-replication-"))
    b = _Bench(args, parent / "cluster")
    try:
        res = trio.run(_main, b, args)
    finally:
        b.stop()
        shutil.rmtree(parent, ignore_errors=True)
    res["cpus"] = os.cpu_count()
    venv = "/work/swift-venv" if args.swift == "auto" else args.swift
    if args.swift != "no" and os.path.exists(os.path.join(venv, "bin", "swift-object-replicator")):
        from benchmarks._swift_replication import run_swift

        res = {"ringstack": res, "swift": run_swift(venv, args.objects, args.size)}
    emit("replication", res, args.out)
    return res
