"""``ringstack bench placement``: allocation candidates and claims, side by side
with OpenStack Placement.

For each size (default 1,000 and 10,000 providers, ``_placement_data``):
start a real ``ringstack serve placement`` process on the loaded state and,
when OpenStack Placement is installed (``--placement-venv``,
``$RINGSTACK_PLACEMENT_VENV`` or /work/placement-venv), Placement 16 on
sqlite (wsgiref, noauth2, one process) on the same data. Then, over one
keep-alive HTTP connection:

- ``GET /allocation_candidates`` (microversion 1.39) p50/p99 for four shapes:
  plain ``VCPU:1,MEMORY_MB:256,DISK_GB:10``, with ``required=HW_CPU_X86_AVX2``,
  with ``member_of`` one aggregate (a tenth of the providers), and plain with
  ``limit=10``; the first request of each shape is a warm-up;
- claims/s: ``PUT /allocations/{new consumer}`` (1.28) one after another,
  and from ``--concurrency`` threads at once;
- ``limit=10`` right after a claim (the state just changed);
- oversubscription check: the threads race for 4 small providers (VCPU 40)
  with more claims than fit; afterwards no usage exceeds its capacity and
  exactly the capacity was granted (invariant 7).

JSON on stdout and in ``--out``, a PNG of the p50s, ``ratios`` > 1 mean
ringstack is faster.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from typing import Any

import numpy as np

from benchmarks._common import bar_plot, emit
from benchmarks._placement_data import (
    HOT_VCPU,
    PROJECT,
    USER,
    Dataset,
    dataset,
    load_placement,
    load_ringstack,
)

HELP = "placement: allocation candidates p50/p99 and claims/s (side by side with Placement)"
DEFAULT_VENV = "/work/placement-venv"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="1000,10000", help="providers (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=30,
                        help="GETs per shape for ringstack (default: %(default)s)")
    parser.add_argument("--placement-iterations", type=int, default=8,
                        help="GETs per shape for Placement (default: %(default)s)")
    parser.add_argument("--claims", type=int, default=300,
                        help="claims per phase for ringstack (default: %(default)s)")
    parser.add_argument("--placement-claims", type=int, default=60,
                        help="claims per phase for Placement (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="claim threads")
    parser.add_argument("--placement-venv", default=None)
    parser.add_argument("--no-placement", action="store_true")


class Client:
    """One keep-alive connection; ``request`` returns (status, body bytes)."""

    def __init__(self, port: int, version: str = "1.39") -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        self.headers = {"x-auth-token": "admin", "openstack-api-version": f"placement {version}",
                        "accept": "application/json"}

    def request(self, method: str, path: str, body: Any = None,
                version: str | None = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        if version:
            headers["openstack-api-version"] = f"placement {version}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()  # a server that closed the connection: reconnect once
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def _start(argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO, env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("READY "):
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, int(line.strip().rsplit(":", 1)[1])
    raise RuntimeError(f"{argv} exited {proc.wait()} before READY")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def shapes(ds: Dataset) -> dict[str, str]:
    base = "resources=VCPU:1,MEMORY_MB:256,DISK_GB:10"
    return {"plain": base, "required": base + "&required=HW_CPU_X86_AVX2",
            "member_of": base + "&member_of=" + ds.aggregates[0], "limit10": base + "&limit=10"}


def measure_gets(port: int, ds: Dataset, iterations: int) -> dict[str, Any]:
    c = Client(port)
    out: dict[str, Any] = {}
    try:
        for name, query in shapes(ds).items():
            status, body = c.request("GET", "/allocation_candidates?" + query)  # warm-up
            assert status == 200, body[:300]
            n = len(json.loads(body)["allocation_requests"])
            times = []
            for _ in range(iterations):
                t0 = time.perf_counter()
                status, body = c.request("GET", "/allocation_candidates?" + query)
                times.append(time.perf_counter() - t0)
                assert status == 200
            ms = np.array(times) * 1000
            out[name] = {"p50_ms": round(float(np.percentile(ms, 50)), 2),
                         "p99_ms": round(float(np.percentile(ms, 99)), 2),
                         "candidates": n, "bytes": len(body), "n": iterations}
    finally:
        c.close()
    return out


def measure_after_claims(port: int, ds: Dataset, rounds: int) -> dict[str, Any]:
    """GET (limit=10) right after a claim: the provider arrays must follow the
    new usage (ringstack: the cheap usage-only refresh)."""
    c = Client(port)
    query = shapes(ds)["limit10"]
    times = []
    try:
        for k in range(rounds):
            assert _claim(c, ds.providers[k].uuid, {"VCPU": 1}) == 204
            t0 = time.perf_counter()
            status, _ = c.request("GET", "/allocation_candidates?" + query)
            times.append(time.perf_counter() - t0)
            assert status == 200
    finally:
        c.close()
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "n": rounds}


def _claim(c: Client, rp: str, resources: dict[str, int]) -> int:
    status, _ = c.request("PUT", f"/allocations/{uuidlib.uuid4()}", {
        "allocations": {rp: {"resources": resources}}, "consumer_generation": None,
        "project_id": PROJECT, "user_id": USER}, version="1.28")
    return status


def measure_claims(port: int, ds: Dataset, count: int, threads: int) -> dict[str, Any]:
    normal = [p.uuid for p in ds.providers[: -len(ds.hot)]]
    res = {"VCPU": 1, "MEMORY_MB": 256, "DISK_GB": 10}
    c = Client(port)
    t0 = time.perf_counter()
    statuses = [_claim(c, normal[k % len(normal)], res) for k in range(count)]
    seq = count / (time.perf_counter() - t0)
    c.close()
    assert statuses.count(204) == count, statuses[:5]

    def race(targets: list[str], n: int, results: list[int]) -> None:
        cl = Client(port)
        try:
            for k in range(n):
                results.append(_claim(cl, targets[k % len(targets)], {"VCPU": 1}))
        finally:
            cl.close()

    def threaded(targets: list[str], total: int) -> tuple[float, list[int]]:
        results: list[int] = []
        per = max(1, total // threads)
        ts = [threading.Thread(target=race, args=(targets[k::threads] or targets, per, results))
              for k in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return per * threads / (time.perf_counter() - t0), results

    conc, results = threaded(normal, count)
    hot = [p.uuid for p in ds.hot]
    attempts = HOT_VCPU * len(hot) * 3 // 2
    _, raced = threaded(hot * threads, attempts)
    c = Client(port)
    used = []
    for rp in hot:
        status, body = c.request("GET", f"/resource_providers/{rp}/usages")
        used.append(json.loads(body)["usages"].get("VCPU", 0))
    c.close()
    return {"sequential_per_s": round(seq, 1), "concurrent_per_s": round(conc, 1),
            "concurrent_ok": results.count(204), "threads": threads,
            "oversubscription_check": {
                "attempts": len(raced), "granted": raced.count(204),
                "refused_409": raced.count(409), "capacity": HOT_VCPU * len(hot),
                "max_used": max(used), "per_provider_capacity": HOT_VCPU,
                "ok": max(used) <= HOT_VCPU and raced.count(204) == sum(used)}}


def run_ringstack(ds: Dataset, args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="bench-placement-")
    try:
        t0 = time.perf_counter()
        load_ringstack(os.path.join(tmp, "data"), ds)
        load_s = time.perf_counter() - t0
        proc, port = _start([sys.executable, "-m", "cli.main", "serve", "placement", "--data",
                             os.path.join(tmp, "data"), "--port", "0"])
        try:
            gets = measure_gets(port, ds, args.iterations)
            claims = measure_claims(port, ds, args.claims, args.concurrency)
            after = measure_after_claims(port, ds, 10)
        finally:
            _stop(proc)
        return {"load_s": round(load_s, 2), "gets": gets, "claims": claims,
                "limit10_after_claim": after}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_placement(ds: Dataset, args: argparse.Namespace, venv: str) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="bench-os-placement-")
    try:
        db = os.path.join(tmp, "placement.db")
        with open(os.path.join(tmp, "placement.conf"), "w") as f:
            f.write("[DEFAULT]\ndebug = False\n[api]\nauth_strategy = noauth2\n"
                    f"[placement_database]\nconnection = sqlite:///{db}\n")
        subprocess.run([os.path.join(venv, "bin", "placement-manage"), "--config-file",
                        os.path.join(tmp, "placement.conf"), "db", "sync"], check=True,
                       capture_output=True)
        runner = [os.path.join(venv, "bin", "python"),
                  os.path.join(REPO, "benchmarks", "_placement_runner.py"), tmp]
        proc, port = _start(runner)  # first start syncs standard classes and traits
        _stop(proc)
        t0 = time.perf_counter()
        load_placement(db, ds)
        load_s = time.perf_counter() - t0
        proc, port = _start(runner)
        try:
            gets = measure_gets(port, ds, args.placement_iterations)
            claims = measure_claims(port, ds, args.placement_claims, args.concurrency)
            after = measure_after_claims(port, ds, 3)
        finally:
            _stop(proc)
        return {"load_s": round(load_s, 2), "gets": gets, "claims": claims,
                "limit10_after_claim": after}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float]:
    out = {}
    for shape, m in ours["gets"].items():
        out[f"{shape}_p50_speedup"] = round(theirs["gets"][shape]["p50_ms"] / m["p50_ms"], 1)
    for key in ("sequential_per_s", "concurrent_per_s"):
        out[f"claims_{key}"] = round(ours["claims"][key] / theirs["claims"][key], 1)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    venv = args.placement_venv or os.environ.get("RINGSTACK_PLACEMENT_VENV", DEFAULT_VENV)
    have = not args.no_placement and os.path.exists(os.path.join(venv, "bin", "placement-manage"))
    result: dict[str, Any] = {"placement_available": have, "sizes": {}}
    for size in (int(s) for s in args.sizes.split(",")):
        ds = dataset(size)
        entry: dict[str, Any] = {"ringstack": run_ringstack(ds, args)}
        if have:
            entry["placement"] = run_placement(ds, args, venv)
            entry["ratios"] = _ratios(entry["ringstack"], entry["placement"])
        result["sizes"][str(size)] = entry
    sizes = list(result["sizes"])
    groups = [f"{s} {shape}" for s in sizes for shape in ("plain", "required", "member_of",
                                                          "limit10")]
    series = {impl: [result["sizes"][s].get(impl, {}).get("gets", {}).get(g.split()[1], {})
                     .get("p50_ms") for s in sizes for g in groups if g.startswith(s + " ")]
              for impl in (["ringstack", "placement"] if have else ["ringstack"])}
    if args.out:
        result["plot"] = bar_plot(os.path.join(args.out, "placement.png"),
                                  "GET /allocation_candidates p50", groups, series, "ms", log=True)
    emit("placement", result, args.out)
    return result
