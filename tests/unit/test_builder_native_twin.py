"""The builder's Cython kernels and their pure twins give identical results."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ring import _builder_kernels as twins
from ring._builder_plan import topology
from ring.inventory import Host, Inventory

native = pytest.importorskip("_native.builder")

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def worlds(draw):
    """A random topology, assignment and kernel inputs (not necessarily consistent)."""
    inv = Inventory(clock=lambda: 0.0)
    n = 0
    for r in range(draw(st.integers(1, 3))):
        for z in range(draw(st.integers(1, 3))):
            for _ in range(draw(st.integers(1, 3))):
                name = f"h{n}"
                n += 1
                inv.add_host(Host(name, r, z, "10.0.0.1", 6200))
                for j in range(draw(st.integers(1, 3))):
                    inv.add_drive(name, f"d{j}", draw(st.sampled_from([0.0, 1.0, 2.0])))
    topo = topology(inv)
    G, Z, H, D = topo.sizes
    R = draw(st.integers(1, 4))
    N = draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    A = rng.integers(-1, D, size=(R, N)).astype(np.int32)
    A[rng.random((R, N)) < draw(st.floats(0, 1))] = -1
    parts = rng.permutation(N)[: draw(st.integers(0, N))].astype(np.int32)
    i32 = np.int32
    common = {
        "zone_start": topo.start[0].astype(i32),
        "host_start": topo.start[1].astype(i32),
        "dev_start": topo.start[2].astype(i32),
        "dev_host": topo.parent[3].astype(i32),
        "host_zone": topo.parent[2].astype(i32),
        "zone_region": topo.parent[1].astype(i32),
        "cap_g": rng.integers(0, 4, G).astype(i32),
        "cap_z": rng.integers(0, 3, Z).astype(i32),
        "cap_h": rng.integers(0, 3, H).astype(i32),
        "cap_d": (topo.active & (rng.random(D) < 0.9)).astype(i32),
    }
    avail = {f"avail_{k}": rng.integers(-3, 12, n).astype(np.int64)
             for k, n in zip("gzhd", (G, Z, H, D), strict=True)}
    nact = {"nact_g": topo.nactive[0].astype(i32), "nact_z": topo.nactive[1].astype(i32),
            "nact_h": topo.nactive[2].astype(i32)}
    extra = {
        "free": (rng.random((R, N)) < 0.3).astype(np.int8),
        "can_move": (rng.random(N) < 0.7).astype(np.int8),
        "excess": rng.integers(-4, 5, D).astype(np.int64),
        "tex": [rng.integers(-4, 5, n).astype(np.int64) for n in (G, Z, H)],
    }
    salt = int(rng.integers(0, 2**63))
    return A, parts, common, avail, nact, extra, salt


def _copies(d: dict) -> dict:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def _same(a: dict, b: dict) -> None:
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@SETTINGS
@given(worlds())
def test_place_replicas_twin(world) -> None:
    A, parts, common, avail, nact, _extra, salt = world
    results = []
    for fn in (native.place_replicas, twins.place_replicas_py):
        a = A.copy()
        av = _copies(avail)
        rc = fn(a, parts, **common, **nact, **av, salt=salt)
        results.append((rc, a, av))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    _same(results[0][2], results[1][2])


@SETTINGS
@given(worlds())
def test_move_replicas_twin(world) -> None:
    A, parts, common, avail, _nact, extra, salt = world
    results = []
    # roomy caps and narrow ranges: many moves, and ties (so the seeded tie-break) common
    avail = {k: np.clip(v, 0, 2) for k, v in avail.items()}
    common = {**common, "cap_g": common["cap_g"] + 2, "cap_z": common["cap_z"] + 1,
              "cap_h": common["cap_h"] + 1}
    for fn in (native.move_replicas, twins.move_replicas_py):
        a = A.copy()
        av = _copies(avail)
        free, cm, ex = extra["free"].copy(), extra["can_move"].copy(), extra["excess"].copy()
        tex = [np.clip(t, -1, 1) for t in extra["tex"]]
        rc = fn(a, parts, free, cm, ex, *tex, **common, **av, salt=salt)
        results.append((rc, a, av, free, cm, ex, tex))
    r0, r1 = results
    assert r0[0] == r1[0]
    for x, y in zip(r0[1:], r1[1:], strict=True):
        if isinstance(x, dict):
            _same(x, y)
        elif isinstance(x, list):
            for u, v in zip(x, y, strict=True):
                np.testing.assert_array_equal(u, v)
        else:
            np.testing.assert_array_equal(x, y)


@SETTINGS
@given(worlds())
def test_gather_dispersion_twin(world) -> None:
    A, parts, common, _avail, _nact, extra, _salt = world
    keys = ("dev_host", "host_zone", "zone_region", "cap_g", "cap_z", "cap_h", "cap_d")
    results = []
    for fn in (native.gather_dispersion, twins.gather_dispersion_py):
        a, cm, ex = A.copy(), extra["can_move"].copy(), extra["excess"].copy()
        rc = fn(a, parts, cm, ex, *(common[k] for k in keys))
        results.append((rc, a, cm, ex))
    assert results[0][0] == results[1][0]
    for x, y in zip(results[0][1:], results[1][1:], strict=True):
        np.testing.assert_array_equal(x, y)


def test_place_kernel_respects_caps_and_fills_every_slot() -> None:
    """A sanity check that the twins test something: a real placement."""
    inv = Inventory(clock=lambda: 0.0)
    for z in range(3):
        inv.add_host(Host(f"h{z}", 0, z, "10.0.0.1", 6200))
        for j in range(2):
            inv.add_drive(f"h{z}", f"d{j}", 1.0)
    topo = topology(inv)
    A = np.full((3, 16), -1, dtype=np.int32)
    i32 = np.int32
    args = {
        "zone_start": topo.start[0].astype(i32), "host_start": topo.start[1].astype(i32),
        "dev_start": topo.start[2].astype(i32), "dev_host": topo.parent[3].astype(i32),
        "host_zone": topo.parent[2].astype(i32), "zone_region": topo.parent[1].astype(i32),
        "cap_g": np.array([3], i32), "cap_z": np.ones(3, i32), "cap_h": np.ones(3, i32),
        "cap_d": np.ones(6, i32), "nact_g": np.array([6], i32), "nact_z": np.full(3, 2, i32),
        "nact_h": np.full(3, 2, i32), "avail_g": np.array([48]), "avail_z": np.full(3, 16),
        "avail_h": np.full(3, 16), "avail_d": np.full(6, 8), "salt": 5,
    }
    for fn in (native.place_replicas, twins.place_replicas_py):
        a = A.copy()
        kw = _copies(args)
        assert fn(a, np.arange(16, dtype=np.int32), **kw) == 48
        zones = topo.tier[1][a]
        assert all(len(set(zones[:, p])) == 3 for p in range(16))
        assert (np.bincount(a.ravel(), minlength=6) == 8).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(4, 7), st.sampled_from([1, 2, 3, 5]), st.integers(0, 50))
def test_whole_rebalance_same_with_twins(pp, replicas, seed) -> None:
    from ring import builder as builder_mod
    from ring.builder import RingBuilder

    def run(kernels) -> list[np.ndarray]:
        saved = (twins.place_replicas, twins.move_replicas, twins.gather_dispersion)
        twins.place_replicas, twins.move_replicas, twins.gather_dispersion = kernels
        try:
            inv = Inventory(clock=lambda: 0.0)
            for z in range(3):
                inv.add_host(Host(f"h{z}", z % 2, z, "10.0.0.1", 6200))
                for j in range(2):
                    inv.add_drive(f"h{z}", f"d{j}", 100.0 + 50 * j)
            b = RingBuilder(pp, replicas, 1, seed=seed)
            out = []
            b.rebalance(inv, now=0.0)
            out.append(b.replica2part2dev.copy())
            inv.add_drive("h1", "d9", 300.0)
            inv.remove_drive(0)
            b.rebalance(inv, now=7200.0)
            out.append(b.replica2part2dev.copy())
            return out
        finally:
            twins.place_replicas, twins.move_replicas, twins.gather_dispersion = saved

    assert builder_mod._builder_kernels is twins
    a = run((native.place_replicas, native.move_replicas, native.gather_dispersion))
    b = run((twins.place_replicas_py, twins.move_replicas_py, twins.gather_dispersion_py))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@SETTINGS
@given(worlds(), st.data())
def test_tier_excess_twin(world, data) -> None:
    A, _parts, common, _avail, _nact, _extra, _salt = world
    keys = ("dev_host", "host_zone", "zone_region")
    lims = [data.draw(st.lists(st.integers(0, 3), min_size=len(common[k]), max_size=len(common[k])))
            for k in ("cap_g", "cap_z", "cap_h", "cap_d")]
    lims = [np.array(x, dtype=np.int32) for x in lims]
    a = native.tier_excess(A, *(common[k] for k in keys), *lims)
    b = twins.tier_excess_py(A, *(common[k] for k in keys), *lims)
    np.testing.assert_array_equal(a, b)


def test_missing_extension_falls_back_with_one_warning() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['_native.builder'] = None\n"
            "import ring._builder_kernels as k\n"
            "from ring.builder import RingBuilder\n"
            "import ring._builder_gather\n"
            "print(k.NATIVE, k.place_replicas is k.place_replicas_py)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "."}, check=True)
    assert out.stdout.split() == ["False", "True"]
    warnings = [line for line in out.stderr.splitlines() if "not built" in line]
    assert len(warnings) == 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(1, 4)),
                min_size=2, max_size=8),
       st.integers(4, 7), st.integers(0, 2**32 - 1))
def test_move_replicas_twin_on_real_states(hosts, pp, seed) -> None:
    """Both move kernels from a real builder state after drives were added."""
    from ring._builder_plan import make_plan
    from ring.builder import RingBuilder

    inv = Inventory(clock=lambda: 0.0)
    for i, (r, z, n) in enumerate(hosts):
        inv.add_host(Host(f"h{i}", r, z, "10.0.0.1", 6200))
        for j in range(n):
            inv.add_drive(f"h{i}", f"d{j}", 100.0)
    if len(inv.drives) < 3:
        return
    b = RingBuilder(pp, 3, 0, seed=seed)
    b.rebalance(inv, now=0.0)
    for i in range(len(hosts) // 2 + 1):
        inv.add_drive(f"h{i}", "new", 150.0)
    topo = topology(inv)
    A = topo.dense(b.replica2part2dev)
    plan = make_plan(topo, 3, b.parts, 0.0)
    rng = np.random.default_rng(seed)
    kernel = RingBuilder._kernel_args(topo, plan, rng)
    kernel = {k: v for k, v in kernel.items() if not k.startswith("nact")}
    excess = (np.bincount(A.ravel(), minlength=len(topo.dev_ids)) - plan.dev_parts).astype(np.int64)
    avail = RingBuilder._avail(topo, np.maximum(-excess, 0))
    tex = [np.bincount(topo.tier[lv], weights=excess, minlength=topo.sizes[lv]).astype(np.int64)
           for lv in range(3)]
    order = rng.permutation(b.parts).astype(np.int32)
    results = []
    for fn in (native.move_replicas, twins.move_replicas_py):
        a, ex, cm = A.copy(), excess.copy(), np.ones(b.parts, dtype=np.int8)
        free = np.zeros(A.shape, dtype=np.int8)
        av = [x.copy() for x in avail]
        tx = [x.copy() for x in tex]
        rc = fn(a, order, free, cm, ex, *tx, avail_g=av[0], avail_z=av[1], avail_h=av[2],
                avail_d=av[3], **kernel)
        results.append((rc, a, ex, cm, free, *av, *tx))
    assert results[0][0] == results[1][0]
    for x, y in zip(results[0][1:], results[1][1:], strict=True):
        np.testing.assert_array_equal(x, y)
