"""``ringstack bench objects``: object PUT/GET through the proxy.

Starts a local cluster (4 storage nodes x 2 drives + proxy, the same code as
``ringstack dev up``), authenticates with tempauth, then for each object size
and client concurrency runs a timed PUT phase and a GET phase (GETs read back
the objects just written). Reports ops/s, MB/s, latency p50/p99 and the CPU
seconds the cluster's server processes (proxy + storage nodes) spent per
operation. Finally streams one large object (1 GiB by default) from a
generator and samples the proxy's RSS every 20 ms: invariant 4 says it stays
flat (target < 100 MB).

With ``--swift`` pointing at an OpenStack Swift venv (default
/work/swift-venv when it exists), the same load runs against a Swift
all-in-one on loopback (``benchmarks/_swift_aio.py``), side by side.

Fairness between the sides: before each side starts, the file system is
synced and, with ``--settle S``, left alone for S seconds. On this machine's
root file system (ext4 without a journal) the inode allocator skips inodes
freed in the last 60 s (300 s while their table block is dirty), checking
each one (``recently_deleted`` in perf): right after a mass delete (a test
run, an earlier bench's teardown) every file and directory created costs
more kernel CPU, and the side that runs first paid for it alone. Both sides
create the same kinds of inodes per PUT (temp file, hash directory).

On a shared, noisy machine the speed drifts over minutes, and one side's
whole run can land in a slow stretch. ``--interleave`` starts both systems
at once and runs their phases alternately (who goes first alternates too),
so each ratio compares phases seconds apart. The idle side is frozen
(SIGSTOP) while the other runs and thawed for its own phases: servers only,
no background daemons on either side, yet an idle Swift all-in-one still
burns ~180 ms of CPU per second here (its object, container and account
servers, ~55 ms/s each; ringstack's idle cluster ~7 ms/s), which took ~9 %
of the machine from every ringstack phase until 2026-12-03. Each phase
records where the rest of the machine went (idle, iowait, steal, the top
other processes), so such interference shows.
``--rounds N`` repeats every size x concurrency pair N times (PUT then GET,
fresh object names each round) and reports each round's ratios and their
median (``ratio_median``), which one slow stretch cannot move. Ratios are
ringstack / Swift for ops/s (``ops_x``: the goal is >= 2) and for CPU per
operation (``cpu_per_op_x``: the goal is <= 0.5).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import psutil
import trio

from benchmarks._common import bar_plot, emit, percentile

HELP = "object PUT/GET through the proxy: ops/s, MB/s, p50/p99, CPU/op, proxy RSS in a 1 GiB PUT"
MIB = 1 << 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="4096,4194304", help="object sizes in bytes (comma-separated)")
    p.add_argument("--concurrency", default="8,32", help="client concurrency levels (comma-separated)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each PUT/GET phase (small objects)")
    p.add_argument("--large-seconds", type=float, default=12.0, help="phase length for objects of 1 MiB or more")
    p.add_argument("--workers", type=int, default=1, help="proxy (and Swift server) worker processes")
    p.add_argument("--big-mib", type=int, default=1024, help="size of the large PUT for the RSS check (0: skip)")
    p.add_argument("--swift", default="auto", help="Swift venv for the side-by-side run ('no' to skip)")
    p.add_argument("--interleave", action="store_true",
                   help="run both systems at once and alternate their phases (steadier ratios on a noisy machine)")
    p.add_argument("--settle", type=float, default=0.0,
                   help="seconds to wait after syncing, before each side (see the module docstring)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run every size x concurrency pair this many times; ratios are then reported "
                        "per round and as their median (with --interleave: each round alternates)")


# -- load generation ------------------------------------------------------------------
class Target:
    """Where to send requests: host, port, path prefix, token, server PIDs."""

    def __init__(self, name: str, storage_url: str, token: str, pids: list[int], proxy_pids: list[int]) -> None:
        parts = urlsplit(storage_url)
        self.name = name
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.prefix = parts.path
        self.token = token
        self.pids = pids
        self.proxy_pids = proxy_pids


def _procs(pids: list[int]) -> list[psutil.Process]:
    out: list[psutil.Process] = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out.append(p)
            out.extend(p.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for p in _procs(pids):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def machine_times() -> Any:
    """The whole machine's CPU times (all cores, seconds)."""
    return psutil.cpu_times()


def process_cpu() -> dict[tuple[int, str], float]:
    """CPU seconds so far of every process on the machine, by (pid, name)."""
    out = {}
    for p in psutil.process_iter(["name", "cpu_times"]):
        t = p.info["cpu_times"]
        if t is not None:
            out[(p.pid, p.info["name"] or "?")] = t.user + t.system
    return out


def top_others(before: dict[tuple[int, str], float], after: dict[tuple[int, str], float],
               exclude: set[int], n: int = 3) -> list[tuple[str, float]]:
    """The ``n`` names (processes outside ``exclude``, summed by name) that
    used the most CPU between two ``process_cpu`` snapshots, in seconds."""
    by_name: dict[str, float] = {}
    for (pid, name), cpu in after.items():
        if pid not in exclude and (pid, name) in before:
            by_name[name] = by_name.get(name, 0.0) + cpu - before[(pid, name)]
    return sorted(((k, v) for k, v in by_name.items() if v > 0), key=lambda kv: -kv[1])[:n]


def machine_share(t0: Any, t1: Any) -> dict[str, float]:
    """Per cent of the machine's CPU time between two ``machine_times``:
    idle, waiting on I/O, stolen by the hypervisor, and busy (the rest)."""
    d = {f: getattr(t1, f, 0.0) - getattr(t0, f, 0.0) for f in t0._fields}
    total = sum(d.values()) or 1e-9
    idle, iowait, steal = d.get("idle", 0.0), d.get("iowait", 0.0), d.get("steal", 0.0)
    return {"idle": 100 * idle / total, "iowait": 100 * iowait / total, "steal": 100 * steal / total,
            "busy_s": total - idle - iowait - steal}


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for p in _procs(pids):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


async def _phase(target: Target, method: str, size: int, concurrency: int, seconds: float,
                 names: list[str]) -> dict[str, Any]:
    from common.http import HTTPClient

    client = HTTPClient(connect_timeout=5)
    payload = os.urandom(size)
    latencies: list[float] = []
    errors = 0
    done = 0
    written: list[str] = []
    cpu0 = cpu_seconds(target.pids)
    pcpu0 = cpu_seconds(target.proxy_pids)
    ccpu0 = time.process_time()
    m0, others0 = machine_times(), process_cpu()
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(w: int) -> None:
        nonlocal errors, done
        i = 0
        while time.perf_counter() < deadline:
            if method == "PUT":
                name = f"o-{size}-{concurrency}-{w}-{i}"
            else:
                name = names[(w * 7919 + i) % len(names)]
            path = f"{target.prefix}/bench/{name}"
            t0 = time.perf_counter()
            try:
                headers = {"x-auth-token": target.token}
                if method == "PUT":
                    headers["content-type"] = "application/octet-stream"
                    resp = await client.request("PUT", target.host, target.port, path, headers, payload, timeout=60)
                    ok = resp.status == 201
                else:
                    # Counted, not kept: the load generator's CPU is paid on
                    # both sides of a side-by-side run and only narrows it.
                    with trio.fail_after(60):
                        async with client.stream("GET", target.host, target.port, path, headers) as sresp:
                            got = 0
                            async for chunk in sresp.iter_body():
                                got += len(chunk)
                    ok = sresp.status == 200 and got == size
            except Exception:  # noqa: BLE001 - counted
                ok = False
            latencies.append(time.perf_counter() - t0)
            if ok:
                done += 1
                if method == "PUT":
                    written.append(name)
            else:
                errors += 1
            i += 1

    async with trio.open_nursery() as nursery:
        for w in range(concurrency):
            nursery.start_soon(worker, w)
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(target.pids) - cpu0
    pcpu = cpu_seconds(target.proxy_pids) - pcpu0
    ccpu = time.process_time() - ccpu0
    machine = machine_share(m0, machine_times())
    others = top_others(others0, process_cpu(), {p.pid for p in _procs(target.pids)} | {os.getpid()})
    await client.aclose()
    if method == "PUT":
        names[:] = written
    return {
        "method": method, "size": size, "concurrency": concurrency, "ops": done, "errors": errors,
        "seconds": round(elapsed, 3), "ops_per_s": round(done / elapsed, 1),
        "mb_per_s": round(done * size / elapsed / 1e6, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2), "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "cpu_ms_per_op": round(cpu / max(done, 1) * 1000, 2),
        "proxy_cpu_ms_per_op": round(pcpu / max(done, 1) * 1000, 2),
        "client_cpu_ms_per_op": round(ccpu / max(done, 1) * 1000, 2),
        # Where the rest of the machine went meanwhile: a side that leaves
        # cores idle (waiting on disks or locks) or shares them with other
        # work is not CPU-bound on its own CPU per op.
        "machine_idle_pct": round(machine["idle"], 1), "machine_iowait_pct": round(machine["iowait"], 1),
        "machine_steal_pct": round(machine["steal"], 1),
        "other_cpu_ms_per_op": round(max(0.0, machine["busy_s"] - cpu - ccpu) / max(done, 1) * 1000, 2),
        "top_others_ms_per_op": {k: round(v / max(done, 1) * 1000, 2) for k, v in others},
    }


async def _big_put(target: Target, mib: int) -> dict[str, Any]:
    from common.http import HTTPClient

    client = HTTPClient(connect_timeout=5)
    block = os.urandom(MIB)
    baseline = rss_bytes(target.proxy_pids)
    peak = baseline
    done = trio.Event()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(mib):
            yield block

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(target.proxy_pids))
            with trio.move_on_after(0.02):
                await done.wait()

    status = 0
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sample)
        headers = {"x-auth-token": target.token, "content-length": str(mib * MIB),
                   "content-type": "application/octet-stream"}
        try:
            resp = await client.request("PUT", target.host, target.port, f"{target.prefix}/bench/big", headers,
                                        body(), timeout=600)
            status = resp.status
        finally:
            done.set()
    elapsed = time.perf_counter() - t0
    await client.request("DELETE", target.host, target.port, f"{target.prefix}/bench/big",
                         {"x-auth-token": target.token}, timeout=60)
    await client.aclose()
    return {"size_mib": mib, "status": status, "seconds": round(elapsed, 2),
            "mb_per_s": round(mib * MIB / elapsed / 1e6, 1),
            "proxy_rss_baseline_mb": round(baseline / 1e6, 1), "proxy_rss_peak_mb": round(peak / 1e6, 1)}


async def _run_targets(targets: list[Target], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every phase on every target. With several targets (``--interleave``)
    the phases alternate between them, and so does who goes first, so a
    drift in the machine's speed lands on both sides; the side not being
    measured is frozen meanwhile (``_freeze_others``)."""
    await create_bench_container(targets)
    phases: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    try:
        await _alternate(targets, args, phases)
    finally:
        _freeze_others(None, targets)  # everything thawed, so teardown can stop it
    results: dict[str, dict[str, Any]] = {t.name: {"phases": phases[t.name]} for t in targets}
    if args.big_mib > 0:
        for target in targets:
            _freeze_others(target, targets)
            try:
                results[target.name]["big_put"] = await _big_put(target, args.big_mib)
            finally:
                _freeze_others(None, targets)
            print(f"# {target.name} big PUT: {results[target.name]['big_put']}", flush=True)
    return results


async def create_bench_container(targets: list[Target]) -> None:
    """The container ``bench`` every phase writes to, on every target."""
    from common.http import HTTPClient

    client = HTTPClient()
    try:
        for target in targets:
            resp = await client.request("PUT", target.host, target.port, f"{target.prefix}/bench",
                                        {"x-auth-token": target.token}, timeout=30)
            if resp.status not in (201, 202):
                raise RuntimeError(f"{target.name}: container PUT answered {resp.status}")
    finally:
        await client.aclose()


def _freeze_others(active: Target | None, targets: list[Target]) -> None:
    """SIGSTOP every side but ``active`` (all of them thawed when None), so an
    idle side's own CPU use never lands in the other side's phase."""
    if len(targets) < 2:
        return
    for t in targets:
        for p in _procs(t.pids):
            try:
                if active is None or t is active:
                    p.resume()
                else:
                    p.suspend()
            except psutil.NoSuchProcess:
                pass


async def _alternate(targets: list[Target], args: argparse.Namespace,
                     phases: dict[str, list[dict[str, Any]]]) -> None:
    turn = 0
    for size in [int(s) for s in args.sizes.split(",") if s]:
        for conc in [int(c) for c in args.concurrency.split(",") if c]:
            seconds = args.large_seconds if size >= MIB else args.seconds
            for rnd in range(max(1, args.rounds)):
                names: dict[str, list[str]] = {t.name: [] for t in targets}
                for method in ("PUT", "GET"):
                    for target in targets if turn % 2 == 0 else targets[::-1]:
                        _freeze_others(target, targets)
                        r = await _phase(target, method, size, conc, seconds, names[target.name])
                        r["round"] = rnd
                        print(f"# {target.name} {method} {size} B x{conc} round {rnd}: {r['ops_per_s']} ops/s "
                              f"{r['mb_per_s']} MB/s p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms "
                              f"cpu {r['cpu_ms_per_op']} ms/op (proxy {r['proxy_cpu_ms_per_op']}; "
                              f"load generator {r['client_cpu_ms_per_op']}; other {r['other_cpu_ms_per_op']}); "
                              f"machine idle {r['machine_idle_pct']}% iowait {r['machine_iowait_pct']}% "
                              f"steal {r['machine_steal_pct']}% (others: {r['top_others_ms_per_op']})", flush=True)
                        phases[target.name].append(r)
                    turn += 1


def _ringstack(args: argparse.Namespace, root: str) -> tuple[Any, Target]:
    from tests.support.cluster import start_cluster

    # Like the Swift side (log_level = WARNING): no per-request log lines,
    # which the storage nodes would otherwise write on their event loops into
    # a pipe this loaded process drains.
    os.environ.setdefault("RINGSTACK_LOG_LEVEL", "WARNING")
    cluster = start_cluster(root, workers=args.workers, extra_config={"proxy": {"log_requests": False}})
    token, url = cluster.auth("test:tester", "testing")
    pids = [n.proc.pid for n in cluster.nodes if n is not None]
    assert cluster.proxy is not None
    return cluster, Target("ringstack", url, token, [cluster.proxy.proc.pid, *pids], [cluster.proxy.proc.pid])


def _swift_venv(args: argparse.Namespace) -> str | None:
    if args.swift == "no":
        return None
    venv = "/work/swift-venv" if args.swift == "auto" else args.swift
    return venv if os.path.exists(os.path.join(venv, "bin", "swift-proxy-server")) else None


def _start_swift(venv: str, root: str, args: argparse.Namespace) -> tuple[Any, str]:
    """A Swift all-in-one, or None and why not (the ringstack figures still stand)."""
    from benchmarks import _swift_aio

    try:
        return _swift_aio.start(venv, os.path.join(root, "swift"), workers=args.workers), ""
    except Exception as exc:  # noqa: BLE001 - reported in the results
        return None, f"could not start a Swift all-in-one: {exc}"


def _swift_target(aio: Any) -> Target:
    return Target("swift", aio.storage_url, aio.token, aio.pids, aio.proxy_pids)


def _settle(seconds: float) -> None:
    """Sync, then wait: inodes freed before this side stop costing it (docstring)."""
    os.sync()
    if seconds > 0:
        print(f"# settling {seconds:g} s before the next side", flush=True)
        time.sleep(seconds)


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"workers": args.workers, "cpus": os.cpu_count(), "seconds_per_phase": args.seconds,
                               "rounds": max(1, args.rounds)}
    venv = _swift_venv(args)
    with tempfile.TemporaryDirectory(prefix="bench-objects-") as root:
        _settle(args.settle)
        cluster, target = _ringstack(args, os.path.join(root, "ringstack"))
        try:
            aio = None
            if args.interleave and venv is not None:
                aio, error = _start_swift(venv, root, args)
                if aio is None:
                    results["swift"] = {"error": error}
            results["interleaved"] = aio is not None
            try:
                targets = [target] if aio is None else [target, _swift_target(aio)]
                results.update(trio.run(_run_targets, targets, args))
            finally:
                if aio is not None:
                    aio.stop()
        finally:
            cluster.stop()
        if venv is not None and not args.interleave:
            _settle(args.settle)
            aio, error = _start_swift(venv, root, args)
            if aio is None:
                results["swift"] = {"error": error}
            else:
                try:
                    results.update(trio.run(_run_targets, [_swift_target(aio)], args))
                finally:
                    aio.stop()
    if "swift" in results and "phases" in results.get("swift", {}):
        results["ratio"] = [
            {"method": a["method"], "size": a["size"], "concurrency": a["concurrency"], "round": a.get("round", 0),
             "ops_x": round(a["ops_per_s"] / max(b["ops_per_s"], 1e-9), 2),
             "cpu_per_op_x": round(a["cpu_ms_per_op"] / max(b["cpu_ms_per_op"], 1e-9), 2)}
            for a, b in zip(results["ringstack"]["phases"], results["swift"]["phases"], strict=False)
        ]
        results["ratio_median"] = median_ratios(results["ratio"])
        for m in results["ratio_median"]:
            print(f"# median of {m['rounds']} round(s), {m['method']} {m['size']} B x{m['concurrency']}: "
                  f"ops/s {m['ops_x']}x (rounds {m['ops_x_min']}-{m['ops_x_max']}), "
                  f"CPU per op {m['cpu_per_op_x']}x", flush=True)
    results["summary"] = {
        "median_cpu_ms_per_op": statistics.median(p["cpu_ms_per_op"] for p in results["ringstack"]["phases"]),
    }
    emit("objects", results, getattr(args, "out", None))
    _plot(results, getattr(args, "out", None))
    return results


def median_ratios(ratios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, size, concurrency), in first-seen order: the median of
    the rounds' ratios (ringstack / Swift ops/s, and CPU per op), with the
    rounds' range of the ops/s ratio."""
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
    for r in ratios:
        groups.setdefault((r["method"], r["size"], r["concurrency"]), []).append(r)
    out = []
    for (method, size, conc), rs in groups.items():
        ops = [r["ops_x"] for r in rs]
        out.append({"method": method, "size": size, "concurrency": conc, "rounds": len(rs),
                    "ops_x": round(statistics.median(ops), 2), "ops_x_min": min(ops), "ops_x_max": max(ops),
                    "cpu_per_op_x": round(statistics.median(r["cpu_per_op_x"] for r in rs), 2)})
    return out


def _plot(results: dict[str, Any], out: str | None) -> None:
    """objects_ops.png (ops/s) and objects_cpu.png (cluster CPU ms per op),
    one group per phase, one bar per system."""
    if not out:
        return
    sides = {name: results[name]["phases"] for name in ("ringstack", "swift")
             if "phases" in results.get(name, {})}
    if not sides:
        return
    phases = sides["ringstack"]
    groups = [f"{p['method']} {_size_label(p['size'])} c{p['concurrency']}"
              + (f" r{p['round']}" if results.get("rounds", 1) > 1 else "") for p in phases]
    for key, fname, title, unit in (("ops_per_s", "objects_ops.png", "through the proxy: ops/s", "ops/s"),
                                    ("cpu_ms_per_op", "objects_cpu.png",
                                     "cluster CPU per operation (lower is better)", "CPU ms/op")):
        series = {name: [p[key] for p in ps] for name, ps in sides.items()}
        bar_plot(os.path.join(out, fname), title, groups, series, unit, log=True)


def _size_label(size: int) -> str:
    return f"{size // MIB}M" if size >= MIB else f"{size // 1024}K"
