"""``ringstack bench listings``: container rows and listings on one storage node.

Starts a real ``ringstack serve storage`` process on one drive directory and,
with the pooled HTTP client, (1) sends object rows (``X-Backend-Type:
container`` PUTs, what every object PUT costs each container replica) at
concurrency 1/8/32 for ``--seconds`` each, with LMDB group commit and
without; (2) times container GETs over the ``--rows`` rows: the whole
listing as JSON, 100 entries after a marker, a prefix page, a delimiter
roll-up, and HEAD. Reports ops/s, p50/p99 and the server's CPU per request
(from /proc). Client and server share the machine's cores: a floor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

import trio

from benchmarks._common import emit, percentile, start_storage_node

HELP = "container-row PUTs at concurrency 1/8/32 (group commit on/off) and listing GETs on one node"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=2.0, help="per row-PUT cell (default: %(default)s)")
    parser.add_argument("--concurrency", default="1,8,32", help="(default: %(default)s)")
    parser.add_argument("--modes", default="group,nogroup", help="group commit on/off (default: %(default)s)")
    parser.add_argument("--rows", type=int, default=10_000, help="rows listed by the GET cells")
    parser.add_argument("--repeat", type=int, default=20, help="GETs per listing cell")


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _rows(port: int, pid: int, conc: int, seconds: float, counter: list[int]) -> dict[str, Any]:
    from common.http import HTTPClient

    client = HTTPClient()
    lat: list[float] = []
    errors = 0
    deadline = trio.current_time() + seconds

    async def worker() -> None:
        nonlocal errors
        while trio.current_time() < deadline:
            counter[0] += 1
            i = counter[0]
            headers = {"X-Timestamp": f"{1700000000 + i}.00000", "X-Size": "4096",
                       "X-Content-Type": "application/octet-stream",
                       "X-Etag": "d41d8cd98f00b204e9800998ecf8427e", "X-Backend-Type": "container"}
            t0 = time.perf_counter()
            resp = await client.request("PUT", "127.0.0.1", port, f"/d1/1/bench/c/o{i:09d}",
                                        headers=headers, timeout=60)
            lat.append(time.perf_counter() - t0)
            errors += resp.status != 201

    c0, t0 = _cpu(pid), time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(conc):
            nursery.start_soon(worker)
    wall = time.perf_counter() - t0
    return {"concurrency": conc, "ops": len(lat), "ops_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(percentile(lat, 0.5) * 1000, 2), "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
            "server_cpu_us_per_op": round((_cpu(pid) - c0) / max(1, len(lat)) * 1e6), "errors": errors}


async def _gets(port: int, pid: int, repeat: int) -> dict[str, Any]:
    from common.http import HTTPClient

    client = HTTPClient()
    out: dict[str, Any] = {}
    cells = [("GET", "format=json"), ("GET", "format=json&limit=100&marker=o000005000"),
             ("GET", "format=json&prefix=o0000050"), ("GET", "format=json&prefix=o0000&delimiter=5"),
             ("HEAD", "")]
    for method, query in cells:
        path = "/d1/1/bench/c" + (f"?{query}" if query else "")
        c0, t0 = _cpu(pid), time.perf_counter()
        for _ in range(repeat):
            resp = await client.request(method, "127.0.0.1", port, path, timeout=60)
        out[f"{method} {query}".strip()] = {
            "ms": round((time.perf_counter() - t0) / repeat * 1000, 2),
            "server_cpu_ms": round((_cpu(pid) - c0) / repeat * 1000, 2),
            "status": resp.status, "bytes": len(resp.body)}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"cpus": os.cpu_count(), "seconds_per_cell": args.seconds, "row_puts": {}}
    for mode in args.modes.split(","):
        parent = tempfile.mkdtemp(prefix="bench-listings-")
        drive = os.path.join(parent, "d1")
        os.mkdir(drive)
        proc, port = start_storage_node(drive, group_commit=mode == "group")
        try:
            async def main(proc: subprocess.Popen[str] = proc, port: int = port,
                           mode: str = mode) -> None:
                from common.http import HTTPClient

                await HTTPClient().request("PUT", "127.0.0.1", port, "/d1/1/bench/c",
                                           headers={"X-Timestamp": "1600000000.00000"})
                counter = [0]
                results["row_puts"][mode] = [
                    await _rows(port, proc.pid, int(c), args.seconds, counter)
                    for c in args.concurrency.split(",")]
                if mode == args.modes.split(",")[0]:
                    while counter[0] < args.rows:
                        await _rows(port, proc.pid, 32, 0.5, counter)
                    results["rows_listed"] = counter[0]
                    results["listing"] = await _gets(port, proc.pid, args.repeat)

            trio.run(main)
        finally:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(parent, ignore_errors=True)
    emit("listings", results, getattr(args, "out", None))
    return results
