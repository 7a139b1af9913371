"""``ringstack bench ring``: builder and lookup speed, side by side with Swift.

For each case (``_ring_cases``): initial rebalance (time, peak memory,
balance, dispersion), add 10% drives and rebalance again (time, fraction of
partition-replicas moved), then lookups per second through a ring file:
single ``get_nodes`` calls, and ``get_nodes_bulk`` over (a, c, o) tuples and
over pre-encoded paths. With OpenStack Swift available (``--swift-venv``,
``$RINGSTACK_SWIFT_VENV`` or ``/work/swift-venv``) the same case runs through
Swift's RingBuilder and Ring in a subprocess of that venv and the JSON gains
``swift`` and ``ratios`` (>1 means ringstack is better).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from benchmarks._common import bar_plot, emit, measure
from benchmarks._ring_cases import CASES, Case, added_devices, initial_devices, lookup_names

HELP = "ring builder and lookup benchmark (cases a, b, c; side by side with OpenStack Swift)"
DEFAULT_SWIFT_VENV = "/work/swift-venv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", default="a,b", help="comma-separated cases from a,b,c (default: %(default)s)")
    parser.add_argument("--swift-venv", default=None, help="venv with OpenStack Swift installed (compare side by side)")
    parser.add_argument("--no-swift", action="store_true", help="do not run Swift even if found")
    parser.add_argument("--single", type=int, default=200_000, help="names for single lookups (default: %(default)s)")
    parser.add_argument("--bulk", type=int, default=1_000_000, help="names for bulk lookups (default: %(default)s)")


def find_swift(explicit: str | None, disabled: bool) -> str | None:
    """The Swift venv's python, or None when Swift is not available."""
    if disabled:
        return None
    for venv in (explicit, os.environ.get("RINGSTACK_SWIFT_VENV"), DEFAULT_SWIFT_VENV):
        if not venv:
            continue
        python = os.path.join(venv, "bin", "python")
        if os.path.exists(python):
            ok = subprocess.run([python, "-W", "ignore", "-c", "import swift.common.ring"], capture_output=True)
            if ok.returncode == 0:
                return python
        if venv == explicit:
            raise SystemExit(f"error: no importable OpenStack Swift in {venv}")
    return None


def _inventory_and_builder(case: Case) -> tuple[Any, Any]:
    from ring.builder import RingBuilder
    from ring.inventory import Inventory

    inventory = Inventory(clock=lambda: 0.0)
    _add(inventory, initial_devices(case))
    return inventory, RingBuilder(case.part_power, case.replicas, min_part_hours=1, seed=1)


def _add(inventory: Any, devices: list[dict[str, Any]]) -> None:
    from ring.inventory import Host

    for d in devices:
        if d["host"] not in inventory.hosts:
            inventory.add_host(Host(d["host"], d["region"], d["zone"], d["ip"], d["port"]))
        inventory.add_drive(d["host"], d["device"], d["weight"])


def _ring_data(builder: Any, inventory: Any) -> Any:
    from ring.ringfile import RingData, RingDevice

    size = max(inventory.drives) + 1
    devices: list[RingDevice | None] = [None] * size
    for drive in inventory.drives.values():
        host = inventory.hosts[drive.host]
        devices[drive.id] = RingDevice(
            drive.id, host.name, host.region, host.zone, host.address, host.port, drive.device, drive.weight
        )
    return RingData(builder.part_power, builder.replicas, builder.replica2part2dev.copy(), tuple(devices), time.time())


def run_ringstack(case: Case, n_single: int, n_bulk: int) -> dict[str, Any]:
    from ring.lookup import KERNEL, Ring
    from ring.ringfile import write_ring

    inventory, builder = _inventory_and_builder(case)
    with measure() as m1:
        report1 = builder.rebalance(inventory, now=0.0)
    before = builder.replica2part2dev.copy()
    _add(inventory, added_devices(case))
    with measure() as m2:
        report2 = builder.rebalance(inventory, now=2 * 3600.0)
    moved = int((before != builder.replica2part2dev).sum())
    total = case.replicas << case.part_power
    result: dict[str, Any] = {
        "kernel": KERNEL,
        "rebalance": {
            "seconds": m1.seconds,
            "peak_mib": m1.peak_mib,
            "balance": report1.balance,
            "dispersion": report1.dispersion,
        },
        "add_10pct": {
            "seconds": m2.seconds,
            "peak_mib": m2.peak_mib,
            "balance": report2.balance,
            "dispersion": report2.dispersion,
            "moved": moved,
            "moved_fraction": moved / total,
            "added_weight_fraction": sum(d["weight"] for d in added_devices(case))
            / inventory.total_weight(),
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "object.ring")
        write_ring(path, _ring_data(builder, inventory))
        t0 = time.perf_counter()
        ring = Ring(path, "bench-secret")
        load_s = time.perf_counter() - t0
        names = lookup_names(max(n_single, n_bulk))
        get_nodes = ring.get_nodes
        single_names = names[:n_single]
        rates = {}
        # cold: first touch of each partition; warm: the same names again (a long-running proxy)
        for label in ("single", "single_warm"):
            t0, c0 = time.perf_counter(), time.process_time()
            for a, c, o in single_names:
                get_nodes(a, c, o)
            rates[label] = n_single / (time.perf_counter() - t0)
            rates[label + "_cpu"] = n_single / max(time.process_time() - c0, 1e-9)
        bulk_names = names[:n_bulk]
        t0, c0 = time.perf_counter(), time.process_time()
        parts, devs = ring.get_nodes_bulk(bulk_names)
        bulk_tuples = n_bulk / (time.perf_counter() - t0)
        rates["bulk_tuples_cpu"] = n_bulk / max(time.process_time() - c0, 1e-9)
        paths = [f"/{a}/{c}/{o}".encode() for a, c, o in bulk_names]
        t0 = time.perf_counter()
        parts2, _ = ring.get_nodes_bulk(paths)
        bulk_paths = n_bulk / (time.perf_counter() - t0)
        assert np.array_equal(parts, parts2)
        # spot check: bulk agrees with single lookups
        for i in range(0, n_bulk, max(1, n_bulk // 1000)):
            part, nodes = get_nodes(*bulk_names[i])
            assert part == parts[i] and [d.id for d in nodes] == devs[i].tolist()
    result["lookups_per_s"] = {**rates, "bulk_tuples": bulk_tuples, "bulk_paths": bulk_paths}
    result["ring_load_seconds"] = load_s
    return result


def run_swift(python: str, case: Case, n_single: int) -> dict[str, Any]:
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_swift_ring.py")
    proc = subprocess.run(
        [python, "-W", "ignore", script, case.name, str(n_single)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"swift run failed: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def ratios(ours: dict[str, Any], swift: dict[str, Any]) -> dict[str, float]:
    """How many times better ringstack is (speed ratios; >1 is better)."""
    s_single = swift["lookups_per_s"]["single"]
    if "single_cpu" in swift["lookups_per_s"]:
        s_cpu = swift["lookups_per_s"]["single_cpu"]
        cpu = {
            "single_lookup_speedup_cpu": ours["lookups_per_s"]["single_cpu"] / s_cpu,
            "bulk_tuples_vs_swift_get_nodes_cpu": ours["lookups_per_s"]["bulk_tuples_cpu"] / s_cpu,
        }
    else:
        cpu = {}
    return {
        "rebalance_speedup": swift["rebalance"]["seconds"] / ours["rebalance"]["seconds"],
        "add_10pct_speedup": swift["add_10pct"]["seconds"] / ours["add_10pct"]["seconds"],
        "single_lookup_speedup": ours["lookups_per_s"]["single"] / s_single,
        "single_warm_lookup_speedup": ours["lookups_per_s"]["single_warm"] / s_single,
        "bulk_tuples_vs_swift_get_nodes": ours["lookups_per_s"]["bulk_tuples"] / s_single,
        "bulk_paths_vs_swift_get_nodes": ours["lookups_per_s"]["bulk_paths"] / s_single,
        **cpu,
    }


def _plots(out_dir: str, results: dict[str, Any]) -> list[str]:
    names = list(results)
    has_swift = any("swift" in r and "error" not in r["swift"] for r in results.values())

    def pick(side: str, *keys: str) -> list[float | None]:
        vals: list[float | None] = []
        for r in results.values():
            node = r.get(side)
            if not node or "error" in node:
                vals.append(None)
                continue
            for k in keys:
                node = node[k]
            vals.append(float(node))
        return vals

    files = []
    series = {"ringstack": pick("ringstack", "rebalance", "seconds")}
    series["ringstack +10%"] = pick("ringstack", "add_10pct", "seconds")
    if has_swift:
        series["swift"] = pick("swift", "rebalance", "seconds")
        series["swift +10%"] = pick("swift", "add_10pct", "seconds")
    files.append(bar_plot(os.path.join(out_dir, "ring_rebalance.png"), "Rebalance time (s, log)", names, series,
                          "seconds", log=True))
    series = {
        "ringstack single": pick("ringstack", "lookups_per_s", "single"),
        "ringstack bulk": pick("ringstack", "lookups_per_s", "bulk_tuples"),
    }
    if has_swift:
        series["swift get_nodes"] = pick("swift", "lookups_per_s", "single")
    files.append(bar_plot(os.path.join(out_dir, "ring_lookups.png"), "Lookups per second (log)", names, series,
                          "lookups/s", log=True))
    return files


def markdown(out: dict[str, Any]) -> str:
    """The results as the Markdown table that goes into RESULTS.md."""

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = [
        "| case | impl | rebalance s | peak MiB | balance % | dispersion % | +10% s | moved % | "
        "balance after % | single lookups/s | bulk lookups/s (tuples / paths) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in out["cases"].items():
        for impl in ("ringstack", "swift"):
            r = entry.get(impl)
            if not r or "error" in r:
                continue
            lk = r["lookups_per_s"]
            bulk = f"{lk['bulk_tuples']:,.0f} / {lk['bulk_paths']:,.0f}" if "bulk_tuples" in lk else "-"
            lines.append(
                f"| {name} | {impl} | {f(r['rebalance']['seconds'], '.3f')} | {f(r['rebalance']['peak_mib'], '.0f')} "
                f"| {f(r['rebalance']['balance'], '.3f')} | {f(r['rebalance']['dispersion'], '.2f')} "
                f"| {f(r['add_10pct']['seconds'], '.3f')} | {f(100 * r['add_10pct']['moved_fraction'], '.2f')} "
                f"| {f(r['add_10pct']['balance'], '.3f')} | {lk['single']:,.0f} | {bulk} |"
            )
        if "ratios" in entry:
            ratio = entry["ratios"]
            lines.append(
                f"| {name} | **ratio** | **{ratio['rebalance_speedup']:.1f}x** | | | "
                f"| **{ratio['add_10pct_speedup']:.1f}x** | | | **{ratio['single_lookup_speedup']:.1f}x** "
                f"| **{ratio['bulk_tuples_vs_swift_get_nodes']:.0f}x / {ratio['bulk_paths_vs_swift_get_nodes']:.0f}x** |"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        raise SystemExit(f"error: unknown case(s) {','.join(unknown)}; choose from {','.join(CASES)}")
    python = find_swift(args.swift_venv, args.no_swift)
    results: dict[str, Any] = {}
    for name in chosen:
        case = CASES[name]
        print(f"# case {name}: {case.describe()}", file=sys.stderr, flush=True)
        entry: dict[str, Any] = {"case": case.describe(), "ringstack": run_ringstack(case, args.single, args.bulk)}
        if python:
            print(f"# case {name}: running OpenStack Swift ({python})", file=sys.stderr, flush=True)
            entry["swift"] = run_swift(python, case, args.single)
            if "error" not in entry["swift"]:
                entry["ratios"] = ratios(entry["ringstack"], entry["swift"])
        results[name] = entry
    out = {"bench": "ring", "swift": bool(python), "cases": results,
           "command": "ringstack bench ring " + " ".join(sys.argv[3:]) if sys.argv[1:3] == ["bench", "ring"]
           else " ".join(sys.argv)}
    if args.out:
        out["plots"] = _plots(args.out, results)
    emit("ring", out, args.out)
    print(markdown(out), file=sys.stderr)
    return out
