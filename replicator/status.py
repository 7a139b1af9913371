"""``ringstack status``: per node and drive, up/down, usage, last replication
passes, async pendings and quarantined files; a rich table, or ``--json``.

Nodes and drives come from the rings (every device of the object, container
and account rings). Up/down is each node's ``/healthcheck``. The rest is read
where the drive lives: the drive's path is ``[storage] drives`` of the config
(relative to the config file) or the dev cluster's ``<config dir>/<host>/<device>``;
a drive whose path is not on this machine shows only up/down. Usage is the
file system's (``statvfs``) plus the drive's LMDB index size; async pendings
are the entries of the drive's ``async_pending`` queue (LMDB, read-only);
quarantined files are counted under ``<drive>/quarantined``; replication is
each daemon's last pass from its stats file on the drive (``_daemon``).

JSON shape: ``{"nodes": [{"node": "HOST:PORT", "host", "up", "drives":
[{"device", "path", "present", "usage": {"total", "used", "free",
"pct_used", "index_bytes"}, "async_pending", "quarantined", "replication":
{daemon: {"started", "duration", "age", ...}}}]}], "summary": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import trio

from common.http import HTTPClient
from replicator._daemon import read_stats


def drive_paths(config: Any) -> dict[str, Path]:
    """``device -> path`` from ``[storage] drives`` (NAME = PATH table or string)."""
    table = config.section("storage").get("drives", {})
    base = Path(config.path).parent if config.path else Path.cwd()
    if isinstance(table, str):
        pairs = [item.split("=", 1) for item in table.split(",") if "=" in item]
        return {k.strip(): (base / v.strip()).resolve() for k, v in pairs}
    if isinstance(table, dict):
        return {k: (base / str(v)).resolve() for k, v in table.items()}
    return {}


def async_pending_count(drive: Path) -> int | None:
    path = drive / "index.lmdb"
    if not (path / "data.mdb").exists():
        return 0 if drive.is_dir() else None
    import lmdb

    env = lmdb.open(str(path), readonly=True, lock=True, max_dbs=64, readahead=False)
    try:
        with env.begin() as txn:
            try:
                db = env.open_db(b"async_pending", txn=txn, create=False)
            except lmdb.NotFoundError:
                return 0
            return int(txn.stat(db)["entries"])
    except lmdb.Error:
        return None
    finally:
        env.close()


def quarantined_count(drive: Path) -> int:
    q = drive / "quarantined"
    return sum(len(files) for _, _, files in os.walk(q)) if q.is_dir() else 0


def drive_report(path: Path | None, now: float) -> dict[str, Any]:
    """(thread) What this machine can see of one drive."""
    if path is None:
        return {"path": None, "present": None}
    out: dict[str, Any] = {"path": str(path), "present": path.is_dir()}
    if not path.is_dir():
        return out
    du = shutil.disk_usage(path)
    index = path / "index.lmdb" / "data.mdb"
    out["usage"] = {"total": du.total, "used": du.used, "free": du.free,
                    "pct_used": round(100.0 * du.used / du.total, 2) if du.total else 0.0,
                    "index_bytes": index.stat().st_size if index.exists() else 0}
    out["async_pending"] = async_pending_count(path)
    out["quarantined"] = quarantined_count(path)
    rep = read_stats(path)
    for rec in rep.values():
        started = rec.get("started")
        if isinstance(started, (int, float)):
            rec["age"] = round(now - started - float(rec.get("duration", 0)), 1)
    out["replication"] = rep
    return out


async def collect(config: Any, rings: dict[str, Any], clock: Any = time.time,
                  timeout: float = 3.0) -> dict[str, Any]:
    paths = drive_paths(config)
    base = Path(config.path).parent if config.path else Path.cwd()
    nodes: dict[tuple[str, int], dict[str, Any]] = {}
    for ring in rings.values():
        for dev in ring.devices:
            if dev is None:
                continue
            node = nodes.setdefault((dev.address, dev.port), {"node": f"{dev.address}:{dev.port}",
                                                              "host": dev.host, "devices": set()})
            node["devices"].add(dev.device)
    client = HTTPClient()

    async def health(key: tuple[str, int], node: dict[str, Any]) -> None:
        try:
            resp = await client.request("GET", key[0], key[1], "/healthcheck", timeout=timeout)
            node["up"] = resp.status == 200
        except Exception:
            node["up"] = False

    async with trio.open_nursery() as n:
        for key, node in nodes.items():
            n.start_soon(health, key, node)
    now = clock()
    out_nodes = []
    for key in sorted(nodes, key=lambda k: (nodes[k]["host"], k)):
        node = nodes[key]
        drives = []
        for device in sorted(node.pop("devices")):
            path = paths.get(device)
            if path is None and (base / node["host"] / device).is_dir():
                path = base / node["host"] / device
            rep = await trio.to_thread.run_sync(drive_report, path, now)
            drives.append({"device": device, **rep})
        out_nodes.append({**node, "drives": drives})
    summary = {"nodes": len(out_nodes), "nodes_up": sum(1 for n in out_nodes if n["up"]),
               "drives": sum(len(n["drives"]) for n in out_nodes),
               "async_pending": sum(d.get("async_pending") or 0 for n in out_nodes for d in n["drives"]),
               "quarantined": sum(d.get("quarantined") or 0 for n in out_nodes for d in n["drives"])}
    return {"nodes": out_nodes, "summary": summary}


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


SHORT = {"object-replicator": "obj", "container-replicator": "cont", "account-replicator": "acct",
         "updater": "upd", "expirer": "exp"}


def render(result: dict[str, Any]) -> Any:
    """One row per drive; the last pass of each daemon as seconds ago."""
    from rich.table import Table

    table = Table(title="ringstack status (last passes: seconds ago)")
    for col in ("node", "up", "drive", "used", "index", "pending", "quar", *SHORT.values()):
        table.add_column(col, no_wrap=True)
    for node in result["nodes"]:
        for i, d in enumerate(node["drives"]):
            usage = d.get("usage") or {}
            reps = d.get("replication") or {}
            ages = [str(round(reps[k]["age"])) if "age" in reps.get(k, {}) else "-" for k in SHORT]
            table.add_row(f"{node['host']} :{node['node'].rsplit(':', 1)[1]}" if i == 0 else "",
                          ("[green]up[/]" if node["up"] else "[red]DOWN[/]") if i == 0 else "",
                          d["device"] + ("" if d.get("present", True) is not False else " [red]missing[/]"),
                          f"{usage['pct_used']:.0f}%" if usage else "n/a",
                          _bytes(usage["index_bytes"]) if usage else "n/a",
                          str(d.get("async_pending", "n/a")), str(d.get("quarantined", "n/a")), *ages)
    return table


def main(args: argparse.Namespace) -> int:
    from cli.main import CommandError
    from common.config import ConfigError, load_config
    from replicator.dispersion import load_rings
    from ring.ringfile import RingFileError

    try:
        config = load_config(args.config)
        rings = load_rings(config)
    except (ConfigError, RingFileError) as exc:
        raise CommandError(str(exc)) from exc
    result = trio.run(collect, config, rings)
    if args.json:
        print(json.dumps(result, sort_keys=True, default=str), flush=True)
    else:
        import sys

        from rich.console import Console

        Console(width=None if sys.stdout.isatty() else 120).print(render(result))
    return 0
