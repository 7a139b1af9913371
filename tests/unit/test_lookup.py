"""Ring lookups: primaries, handoff order, bulk forms, reload on a new file.

Runs with whichever kernels ``ring.lookup`` selected; ``make test`` runs it
again with ``RINGSTACK_PUREPYTHON=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import ring.lookup as lookup_mod
from ring.hashing import BadName, get_partition, name_path
from ring.lookup import Ring
from ring.ringfile import RingData, RingDevice, write_ring

SECRET = "s3cret"


def layout(regions: int = 2, zones: int = 3, hosts: int = 2, drives: int = 2) -> tuple[RingDevice, ...]:
    devs = []
    for r in range(1, regions + 1):
        for z in range(1, zones + 1):
            for h in range(hosts):
                for d in range(drives):
                    i = len(devs)
                    devs.append(RingDevice(i, f"r{r}z{z}h{h}", r, z, f"10.{r}.{z}.{h}", 6200, f"sd{d}", 100.0))
    return tuple(devs)


def spread_table(devs: tuple[RingDevice, ...], part_power: int, replicas: int, seed: int = 0) -> np.ndarray:
    """A table whose replicas are on distinct drives (good enough for lookups)."""
    rng = np.random.default_rng(seed)
    parts = 1 << part_power
    table = np.empty((replicas, parts), dtype=np.int32)
    for p in range(parts):
        table[:, p] = rng.choice(len(devs), size=replicas, replace=False)
    return table


@pytest.fixture
def ring_path(tmp_path: Path) -> Path:
    devs = layout()
    path = tmp_path / "object.ring"
    write_ring(path, RingData(8, 3, spread_table(devs, 8, 3), devs))
    return path


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ring_get_nodes_matches_table_and_hashing(ring_path: Path) -> None:
    ring = Ring(ring_path, SECRET)
    table = ring.data.replica2part2dev
    assert (ring.part_power, ring.replicas, ring.partitions) == (8, 3, 256)
    for i in range(200):
        name = ("AUTH_test", f"c{i % 7}", f"o/{i}")
        part, nodes = ring.get_nodes(*name)
        assert part == get_partition(SECRET, 8, *name) == ring.get_part(*name)
        assert [d.id for d in nodes] == table[:, part].tolist()
        assert ring.get_part_nodes(part) == nodes
    part, nodes = ring.get_nodes("AUTH_test")
    assert part == get_partition(SECRET, 8, "AUTH_test") and len(nodes) == 3
    part, _ = ring.get_nodes("AUTH_test", "c")
    assert part == get_partition(SECRET, 8, "AUTH_test", "c")


def test_ring_secret_changes_partitions(ring_path: Path) -> None:
    a, b = Ring(ring_path, "one"), Ring(ring_path, "two")
    names = [("a", "c", f"o{i}") for i in range(64)]
    assert [a.get_part(*n) for n in names] != [b.get_part(*n) for n in names]


def test_ring_bad_names(ring_path: Path) -> None:
    ring = Ring(ring_path, SECRET)
    with pytest.raises(BadName):
        ring.get_nodes("a", None, "o")
    with pytest.raises(BadName):
        ring.get_nodes_bulk([("a", None, "o")])
    with pytest.raises(TypeError):
        ring.get_parts_bulk([12])
    with pytest.raises(IndexError):
        ring.get_part_nodes(256)


def test_ring_returned_list_is_a_copy(ring_path: Path) -> None:
    ring = Ring(ring_path, SECRET)
    part, nodes = ring.get_nodes("a", "c", "o")
    nodes.clear()
    assert len(ring.get_nodes("a", "c", "o")[1]) == 3


def test_ring_direct_lookup_past_eager_limit(ring_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eager = Ring(ring_path, SECRET)
    monkeypatch.setattr(lookup_mod, "EAGER_PARTITIONS", 16)
    lazy = Ring(ring_path, SECRET)
    for i in range(100):
        assert lazy.get_nodes("a", "c", str(i)) == eager.get_nodes("a", "c", str(i))


def test_ring_handoffs_failure_domain_order(ring_path: Path) -> None:
    ring = Ring(ring_path, SECRET)
    devs = [d for d in ring.devices if d is not None]
    for part in range(0, 256, 5):
        primaries = ring.get_part_nodes(part)
        handoffs = list(ring.get_more_nodes(part))
        ids = [d.id for d in handoffs]
        assert len(ids) == len(set(ids)) == len(devs) - 3
        assert not set(ids) & {d.id for d in primaries}
        regions_primary = {d.region for d in primaries}
        if len(regions_primary) == 1:
            assert handoffs[0].region not in regions_primary
        assert list(ring.get_more_nodes(part)) == handoffs  # deterministic


def test_ring_handoffs_tier_passes_are_monotone(ring_path: Path) -> None:
    """Simulate the passes: a handoff in a reused region only once no new region is left, etc."""
    ring = Ring(ring_path, SECRET)
    for part in range(0, 256, 3):
        used = ring.get_part_nodes(part)
        handoffs = list(ring.get_more_nodes(part))
        all_regions = {d.region for d in ring.devices if d is not None}
        all_zones = {(d.region, d.zone) for d in ring.devices if d is not None}
        seen_regions = {d.region for d in used}
        seen_zones = {(d.region, d.zone) for d in used}
        for dev in handoffs:
            if seen_regions != all_regions:
                assert dev.region not in seen_regions
            elif seen_zones != all_zones:
                assert (dev.region, dev.zone) not in seen_zones
            seen_regions.add(dev.region)
            seen_zones.add((dev.region, dev.zone))


def test_ring_bulk_agrees_with_single(ring_path: Path) -> None:
    ring = Ring(ring_path, SECRET)
    names: list[object] = [("a", "c", f"o{i}") for i in range(300)]
    names += ["/a/c/x", b"/a/c/y", ("a",), ("a", "c"), ("a", "c", None), ("a", "\udcff", "o"), bytearray(b"/z")]
    parts, devs = ring.get_nodes_bulk(names)
    assert parts.dtype == np.int64 and devs.shape == (len(names), 3)
    for i, name in enumerate(names):
        if isinstance(name, tuple):
            path = name_path(*name)
        elif isinstance(name, str):
            path = name.encode("utf-8", "surrogatepass")
        else:
            path = bytes(name)
        part = get_partition(SECRET, 8, *name) if isinstance(name, tuple) else None
        if part is not None:
            assert parts[i] == part
        assert devs[i].tolist() == ring.data.replica2part2dev[:, parts[i]].tolist()
        assert path.startswith(b"/")
    assert (ring.get_parts_bulk(iter(names)) == parts).all()
    assert ring.get_parts_bulk([]).shape == (0,)


def test_ring_reload_follows_the_file(ring_path: Path, tmp_path: Path) -> None:
    clock = FakeClock()
    ring = Ring(ring_path, SECRET, clock=clock, reload_interval=15.0)
    old_table = ring.data.replica2part2dev.copy()
    devs = layout()
    new = RingData(8, 3, spread_table(devs, 8, 3, seed=7), devs)
    write_ring(ring_path, new)
    clock.now += 10
    assert (ring.data.replica2part2dev == old_table).all()  # not yet: interval not over
    clock.now += 6
    part, nodes = ring.get_nodes("a", "c", "o")
    assert [d.id for d in nodes] == new.replica2part2dev[:, part].tolist()
    assert ring.last_reload_error is None


def test_ring_reload_ignores_corrupt_file(ring_path: Path) -> None:
    clock = FakeClock()
    ring = Ring(ring_path, SECRET, clock=clock, reload_interval=1.0)
    before = ring.get_nodes("a", "c", "o")
    blob = bytearray(ring_path.read_bytes())
    blob[-40] ^= 0xFF
    tmp = ring_path.with_suffix(".bad")
    tmp.write_bytes(bytes(blob))
    os.replace(tmp, ring_path)
    clock.now += 2
    assert ring.get_nodes("a", "c", "o") == before
    assert ring.last_reload_error and "checksum" in ring.last_reload_error


def test_ring_rewrite_same_content_keeps_state(ring_path: Path) -> None:
    clock = FakeClock()
    ring = Ring(ring_path, SECRET, clock=clock, reload_interval=1.0)
    write_ring(ring_path, ring.data)  # same bytes, new inode/mtime
    clock.now += 2
    assert ring.reload_if_changed() is False


@pytest.mark.parametrize("eager", [lookup_mod.EAGER_PARTITIONS, 0])
def test_ring_holes_in_table(monkeypatch: pytest.MonkeyPatch, eager: int) -> None:
    monkeypatch.setattr(lookup_mod, "EAGER_PARTITIONS", eager)
    devs = layout(1, 1, 1, 2)
    table = np.array([[0, 1], [-1, 0]], dtype=np.int32)
    ring = Ring.from_data(RingData(1, 2, table, devs), SECRET)
    assert [d.id for d in ring.get_part_nodes(0)] == [0]
    assert [d.id for d in ring.get_part_nodes(1)] == [1, 0]
    assert [d.id for d in ring.get_more_nodes(0)] == [1]
    _, ids = ring.get_nodes_bulk([b"/x"])
    assert ids.shape == (1, 2)
