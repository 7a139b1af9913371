"""``ringstack bench storage``: direct object PUT/GET against one storage node.

Starts a real ``ringstack serve storage`` process on one drive directory
(a temp dir, or ``--drive-dir``), then for each object size and concurrency
drives it with the pooled HTTP client (``common.http.HTTPClient``) for
``--seconds``: PUTs of new names, then GETs of those names (``--methods``
adds ``ROW``, container listing row PUTs as an object server's container
update sends them, and ``HEALTH``, ``/healthcheck`` GETs: the HTTP
exchange alone). Reports ops/s,
p50/p99 latency and the server's CPU per operation (from /proc), once with
LMDB group commit and once without (``--no-group-commit``), so the effect of
batching the index fsyncs is visible. The data file's own fsync is never
skipped in either mode.

Client and server share the machine's cores: the figures are a floor.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from typing import Any

import trio

from benchmarks._common import bar_plot, emit, percentile, start_storage_node

HELP = "direct PUT/GET 4 KiB and 1 MiB at concurrency 1/8/32 against one storage node (group commit on/off)"
ROWS = "/d1/7/bench/rows"  # the container the ROW method writes into


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=2.0, help="per cell (default: %(default)s)")
    parser.add_argument("--sizes", default="4096,1048576", help="object sizes in bytes (default: %(default)s)")
    parser.add_argument("--concurrency", default="1,8,32", help="(default: %(default)s)")
    parser.add_argument("--modes", default="group,nogroup", help="group commit on/off (default: %(default)s)")
    parser.add_argument("--methods", default="PUT,GET",
                        help="PUT, GET (of the PUT's names), ROW (container row PUTs), HEALTH (default: %(default)s)")
    parser.add_argument("--drive-dir", default="", help="parent dir for the drive (default: a temp dir)")
    parser.add_argument("--log-level", default="INFO", help="server log level (default: %(default)s)")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _commit_stats(port: int) -> dict[str, float]:
    """LMDB transactions vs writers committed, from the server's /metrics."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    vals = {}
    for name in ("batches", "ops"):
        m = re.search(rf'^ringstack_storage_group_commit_{name}{{drive="d1"}} ([0-9.e+]+)$', text, re.M)
        vals[name] = float(m.group(1)) if m else 0.0
    vals["writers_per_txn"] = round(vals["ops"] / vals["batches"], 2) if vals["batches"] else 0.0
    return vals


async def _cell(port: int, method: str, size: int, conc: int, seconds: float, names: list[str],
                ts_base: list[int]) -> dict[str, Any]:
    from common.http import HTTPClient

    client = HTTPClient()
    body = os.urandom(size)
    lat: list[float] = []
    errors = 0
    deadline = trio.current_time() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal errors
        while trio.current_time() < deadline:
            i = next(counter)
            if method == "HEALTH":
                t0 = time.perf_counter()
                resp = await client.request("GET", "127.0.0.1", port, "/healthcheck", timeout=60)
                ok = resp.status == 200
            elif method == "ROW":
                ts_base[0] += 1
                headers = {"X-Timestamp": f"{ts_base[0] / 100000:.5f}", "X-Backend-Type": "container",
                           "X-Size": str(size), "X-Content-Type": "application/octet-stream",
                           "X-Etag": "d41d8cd98f00b204e9800998ecf8427e"}
                t0 = time.perf_counter()
                resp = await client.request("PUT", "127.0.0.1", port, f"{ROWS}/o{size}-{conc}-{i}",
                                            headers=headers, timeout=60)
                ok = resp.status == 201
            elif method == "PUT":
                name = f"/d1/{i % 64}/bench/c{size}/o{len(names)}"
                ts_base[0] += 1
                headers = {"X-Timestamp": f"{ts_base[0] / 100000:.5f}", "Content-Type": "application/octet-stream",
                           "Content-Length": str(size)}
                t0 = time.perf_counter()
                resp = await client.request("PUT", "127.0.0.1", port, name, headers=headers, body=body, timeout=60)
                ok = resp.status == 201
                if ok:
                    names.append(name)
            else:
                name = names[i % len(names)]
                t0 = time.perf_counter()
                async with client.stream("GET", "127.0.0.1", port, name, timeout=60) as resp:
                    n = 0
                    async for chunk in resp.iter_body():
                        n += len(chunk)
                ok = resp.status == 200 and n == size
            lat.append(time.perf_counter() - t0)
            if not ok:
                errors += 1

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(conc):
            nursery.start_soon(worker)
    wall = time.perf_counter() - t0
    await client.aclose() if hasattr(client, "aclose") else None
    return {"ops": len(lat), "ops_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(percentile(lat, 0.5) * 1000, 2), "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
            "errors": errors, "MB_per_s": round(len(lat) * size / wall / 1e6, 1)}


async def _make_container(port: int, ts_base: list[int]) -> None:
    from common.http import HTTPClient

    client = HTTPClient()
    ts_base[0] += 1
    resp = await client.request("PUT", "127.0.0.1", port, ROWS, timeout=60,
                                headers={"X-Timestamp": f"{ts_base[0] / 100000:.5f}", "X-Backend-Type": "container"})
    await client.aclose()
    if resp.status not in (201, 202):
        raise RuntimeError(f"container PUT answered {resp.status}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    concs = [int(c) for c in args.concurrency.split(",")]
    results: dict[str, Any] = {"seconds_per_cell": args.seconds, "cpus": os.cpu_count(), "cells": []}
    for mode in args.modes.split(","):
        parent = tempfile.mkdtemp(prefix="bench-storage-", dir=args.drive_dir or None)
        drive = os.path.join(parent, "d1")
        os.mkdir(drive)
        proc, port = start_storage_node(drive, group_commit=mode == "group", log_level=args.log_level)
        ts_base = [int(time.time() * 100000)]
        methods = [m.strip().upper() for m in args.methods.split(",") if m.strip()]
        try:
            if "ROW" in methods:
                trio.run(_make_container, port, ts_base)
            for size in sizes:
                for conc in concs:
                    names: list[str] = []
                    for method in methods:
                        if method == "GET" and not names:
                            continue  # GETs read what the PUT cell wrote
                        cpu0 = _cpu_seconds(proc.pid)
                        cell = trio.run(_cell, port, method, size, conc, args.seconds, names, ts_base)
                        cpu = _cpu_seconds(proc.pid) - cpu0
                        cell.update(mode=mode, method=method, size=size, concurrency=conc,
                                    server_cpu_ms_per_op=round(cpu * 1000 / max(1, cell["ops"]), 3))
                        results["cells"].append(cell)
                        print(f"# {mode:8s} {method:3s} {size:>8d}B c={conc:<3d} {cell['ops_per_s']:>8.1f} ops/s "
                              f"p50 {cell['p50_ms']:.2f} ms p99 {cell['p99_ms']:.2f} ms "
                              f"cpu {cell['server_cpu_ms_per_op']:.3f} ms/op", file=sys.stderr, flush=True)
            results.setdefault("group_commit", {})[mode] = _commit_stats(port)
        finally:
            proc.terminate()
            proc.wait(10)
            shutil.rmtree(parent, ignore_errors=True)
    for mode, st in results.get("group_commit", {}).items():
        print(f"# {mode}: {st['ops']:.0f} index writes in {st['batches']:.0f} LMDB txns "
              f"({st['writers_per_txn']} per txn)", file=sys.stderr, flush=True)
    emit("storage", results, args.out)
    _plot(results, args.out)
    return results


def _plot(results: dict[str, Any], out: str | None) -> None:
    if not out:
        return
    cells = results["cells"]
    for method in sorted({c["method"] for c in cells}):
        groups = sorted({(c["size"], c["concurrency"]) for c in cells if c["method"] == method})
        series = {}
        for mode in sorted({c["mode"] for c in cells}):
            by = {(c["size"], c["concurrency"]): c["ops_per_s"] for c in cells
                  if c["method"] == method and c["mode"] == mode}
            series[mode] = [by.get(g) for g in groups]
        bar_plot(os.path.join(out, f"storage_{method.lower()}.png"), f"storage node {method} ops/s",
                 [f"{s // 1024}K c{c}" for s, c in groups], series, "ops/s", log=True)
