"""Figures and tables for ``ringstack ring show|dispersion|rebalance|lookup``.

Figures are plain dicts (what ``--json`` prints); tables are rich renderings
of the same dicts, so the two never disagree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ring.builder import RebalanceReport, RingBuilder
from ring.inventory import Inventory
from ring.ringfile import RingDevice

TIERS = ("region", "zone", "host", "drive")


def _pct(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def ring_summary(builder: RingBuilder, inventory: Inventory) -> dict[str, Any]:
    """part_power, replicas, device count, balance and dispersion (percent) of one ring."""
    rebalanced = builder.ever_rebalanced()
    return {
        "part_power": builder.part_power,
        "partitions": builder.parts,
        "replicas": builder.replicas,
        "min_part_hours": builder.min_part_hours,
        "overload": builder.overload,
        "devices": len(inventory.drives),
        "rebalanced": rebalanced,
        "balance": _pct(builder.balance(inventory)) if rebalanced and inventory.drives else None,
        "dispersion": _pct(builder.dispersion(inventory)) if rebalanced and inventory.drives else None,
        "last_rebalance_at": builder.last_rebalance_at,
    }


def rebalance_summary(builder: RingBuilder, inventory: Inventory, report: RebalanceReport) -> dict[str, Any]:
    return {
        "part_power": builder.part_power,
        "replicas": builder.replicas,
        "devices": len(inventory.drives),
        "moved": report.moved,
        "moved_fraction": report.moved_fraction,
        "moved_percent": _pct(100.0 * report.moved_fraction),
        "balance": _pct(report.balance),
        "dispersion": _pct(report.dispersion),
        "seconds": round(report.duration, 4),
    }


def device_rows(rings: dict[str, RingBuilder], inventory: Inventory, focus: str) -> list[dict[str, Any]]:
    """One row per drive: where it is, its weight, partitions per ring, balance in ``focus``."""
    counts = {name: b.dev_counts() for name, b in rings.items()}
    focus_b = rings[focus]
    total_w = inventory.total_weight()
    rows = []
    for d in sorted(inventory.drives.values(), key=lambda d: d.id):
        h = inventory.hosts[d.host]
        row: dict[str, Any] = {
            "id": d.id, "region": h.region, "zone": h.zone, "host": h.name, "address": h.address,
            "port": h.port, "device": d.device, "weight": d.weight, "meta": d.meta,
            "partitions": {name: counts[name].get(d.id, 0) for name in rings},
        }
        want = focus_b.replicas * focus_b.parts * d.weight / total_w if total_w else 0.0
        have = counts[focus].get(d.id, 0)
        if want:
            row["balance"] = _pct(100.0 * (have - want) / want)
        else:
            row["balance"] = 999.99 if have else 0.0
        rows.append(row)
    return rows


def _tier_keys(inventory: Inventory, size: int) -> list[np.ndarray]:
    """Per tier, an int array drive id -> domain index (-1 for unknown ids)."""
    keys = [np.full(size + 1, -1, dtype=np.int64) for _ in TIERS]
    index: list[dict[Any, int]] = [{} for _ in TIERS]
    for d in inventory.drives.values():
        h = inventory.hosts[d.host]
        parts = (h.region, (h.region, h.zone), (h.region, h.zone, h.name), d.id)
        for level, key in enumerate(parts):
            keys[level][d.id] = index[level].setdefault(key, len(index[level]))
    return keys


def dispersion_rows(builder: RingBuilder, inventory: Inventory) -> list[dict[str, Any]]:
    """Per tier: domains, the most replicas of one partition in one domain, and how
    many partitions exceed the ideal ``ceil(replicas / domains)`` at that tier."""
    table = builder.replica2part2dev
    size = max(int(table.max(initial=-1)), max(inventory.drives, default=-1)) + 1
    keys = _tier_keys(inventory, size)
    rows = []
    for level, tier in enumerate(TIERS):
        domains = int(keys[level].max(initial=-1)) + 1
        dom = keys[level][np.where(table >= 0, table, size)]  # [replicas][parts], -1 unassigned
        s = np.sort(dom, axis=0)
        run = np.ones(s.shape[1], dtype=np.int64)
        best = np.where(s[0] >= 0, 1, 0)
        for r in range(1, s.shape[0]):
            same = (s[r] == s[r - 1]) & (s[r] >= 0)
            run = np.where(same, run + 1, 1)
            best = np.maximum(best, np.where(s[r] >= 0, run, 0))
        ideal = math.ceil(builder.replicas / domains) if domains else builder.replicas
        over = int((best > ideal).sum())
        hist = np.bincount(best, minlength=builder.replicas + 1).tolist()
        rows.append({
            "tier": tier, "domains": domains, "ideal_max": ideal, "max_replicas": int(best.max(initial=0)),
            "partitions_over": over, "percent_over": _pct(100.0 * over / builder.parts),
            "partitions_by_max_replicas": hist,
        })
    return rows


def print_show(console: Console, path: str, summaries: dict[str, dict[str, Any]],
               rows: list[dict[str, Any]], focus: str) -> None:
    t = Table(title=f"{path}: {len(rows)} drives")
    for col in ("ring", "part power", "replicas", "partitions", "balance %", "dispersion %", "min part hours",
                "overload"):
        t.add_column(col, justify="right" if col != "ring" else "left", overflow="fold")
    for name, s in summaries.items():
        t.add_row(name, str(s["part_power"]), str(s["replicas"]), str(s["partitions"]),
                  "-" if s["balance"] is None else f"{s['balance']:.2f}",
                  "-" if s["dispersion"] is None else f"{s['dispersion']:.2f}",
                  f"{s['min_part_hours']:g}", f"{s['overload']:g}")
    console.print(t)
    d = Table(title=f"drives (balance in the {focus} ring)")
    named = any(r["host"] != f"{r['address']}:{r['port']}" for r in rows)
    cols = ["id", "r", "z", "host", *(["address"] if named else []), "device", "weight", *summaries,
            "balance %", "meta"]
    for col in cols:
        right = col in ("id", "r", "z", "weight", "balance %") or col in summaries
        d.add_column(col, justify="right" if right else "left", overflow="fold")
    for r in rows:
        addr = [f"{r['address']}:{r['port']}"] if named else []
        d.add_row(str(r["id"]), str(r["region"]), str(r["zone"]), r["host"], *addr, r["device"],
                  f"{r['weight']:g}", *(str(r["partitions"][n]) for n in summaries), f"{r['balance']:.2f}",
                  r["meta"])
    console.print(d)


def print_dispersion(console: Console, name: str, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    disp = summary["dispersion"]
    t = Table(title=f"{name} ring: dispersion {'-' if disp is None else f'{disp:.2f}'}% "
                    f"(replicas {summary['replicas']}, {summary['partitions']} partitions)")
    for col in ("tier", "domains", "ideal max", "worst", "partitions over", "% over", "partitions by max replicas"):
        t.add_column(col, justify="left" if col == "tier" else "right")
    for r in rows:
        t.add_row(r["tier"], str(r["domains"]), str(r["ideal_max"]), str(r["max_replicas"]),
                  str(r["partitions_over"]), f"{r['percent_over']:.2f}",
                  " ".join(f"{k}:{v}" for k, v in enumerate(r["partitions_by_max_replicas"]) if v))
    console.print(t)


def device_json(dev: RingDevice) -> dict[str, Any]:
    return dev.to_json()


def print_lookup(console: Console, ring_name: str, path: str, part: int, primaries: list[RingDevice],
                 handoffs: list[RingDevice]) -> None:
    t = Table(title=f"{path} -> {ring_name} ring, partition {part}")
    for col in ("role", "id", "region", "zone", "host", "address", "device"):
        t.add_column(col)
    for role, devs in (("primary", primaries), ("handoff", handoffs)):
        for i, d in enumerate(devs):
            t.add_row(f"{role} {i}", str(d.id), str(d.region), str(d.zone), d.host, f"{d.address}:{d.port}",
                      d.device)
    console.print(t)
