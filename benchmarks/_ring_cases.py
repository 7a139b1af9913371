"""The ring benchmark's cases, as plain data (standard library only).

Imported by ``bench_ring`` and by ``_swift_ring`` (which runs under OpenStack
Swift's interpreter), so both sides build exactly the same cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    part_power: int
    regions: int
    zones_per_region: int
    hosts_per_zone: int
    drives_per_host: int
    weights: tuple[float, ...]
    replicas: int = 3
    added_fraction: float = 0.10

    @property
    def drives(self) -> int:
        return self.regions * self.zones_per_region * self.hosts_per_zone * self.drives_per_host

    def describe(self) -> str:
        return (
            f"pp{self.part_power}, {self.drives} drives, {self.regions} region(s) / "
            f"{self.regions * self.zones_per_region} zones, weights {'/'.join(f'{w:g}' for w in self.weights)}"
        )


CASES: dict[str, Case] = {
    "a": Case("a", 14, 1, 4, 3, 4, (100.0,)),
    "b": Case("b", 18, 2, 3, 10, 10, (4000.0, 8000.0, 12000.0)),
    "c": Case("c", 20, 2, 4, 15, 10, (4000.0, 8000.0, 12000.0)),
}


def _device(region: int, zone: int, host: int, drive: int, weight: float) -> dict[str, Any]:
    ip = f"10.{region}.{zone}.{host}"
    return {
        "region": region,
        "zone": zone,
        "host": f"{ip}:6200",
        "ip": ip,
        "port": 6200,
        "device": f"d{drive}",
        "weight": weight,
    }


def initial_devices(case: Case) -> list[dict[str, Any]]:
    """The starting cluster; weights cycle drive by drive."""
    out = []
    for r in range(1, case.regions + 1):
        for z in range(1, case.zones_per_region + 1):
            for h in range(case.hosts_per_zone):
                for d in range(case.drives_per_host):
                    out.append(_device(r, z, h, d, case.weights[len(out) % len(case.weights)]))
    return out


def added_devices(case: Case) -> list[dict[str, Any]]:
    """``added_fraction`` more drives on one new host per zone, round robin over zones."""
    count = round(case.drives * case.added_fraction)
    zones = [(r, z) for r in range(1, case.regions + 1) for z in range(1, case.zones_per_region + 1)]
    per_zone: dict[tuple[int, int], int] = {}
    out = []
    for i in range(count):
        r, z = zones[i % len(zones)]
        d = per_zone.get((r, z), 0)
        per_zone[(r, z)] = d + 1
        out.append(_device(r, z, case.hosts_per_zone, d, case.weights[i % len(case.weights)]))
    return out


def lookup_names(count: int) -> list[tuple[str, str, str]]:
    return [("AUTH_bench", f"c{i % 1000}", f"o{i}") for i in range(count)]
