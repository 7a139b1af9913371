"""The placement store: rules of providers, inventories, allocations and
reshapes, group commit, snapshots, and invariant 7 under concurrent claims
from trio tasks and plain threads (hypothesis, many seeds)."""

from __future__ import annotations

import contextlib
import random
import tempfile
import threading

import pytest
import trio
import trio.lowlevel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler import _store_allocations as sa
from scheduler import _store_providers as sp
from scheduler._store_records import ConsumerWrite, Inventory, PlacementError
from scheduler.microversion import MicroversionError, Version, parse_version_string
from scheduler.store import PlacementStore, _collect

U1 = "11111111-1111-1111-1111-111111111111"
U2 = "22222222-2222-2222-2222-222222222222"
C1 = "c0000000-0000-0000-0000-000000000001"
C2 = "c0000000-0000-0000-0000-000000000002"


@pytest.fixture
def store(tmp_path):
    s = PlacementStore(str(tmp_path / "pl"), durable=False)
    yield s
    s.close()


def _rp(store, uuid=U1, name="rp1", parent=None, **invs):
    store.write_sync(lambda tx: sp.create_provider(tx, uuid, name, parent))
    if invs:
        gen = store.read_sync(lambda tx: tx.provider(uuid)).generation
        store.write_sync(lambda tx: sp.set_inventories(tx, uuid, gen, {
            rc: Inventory(rc, **v) if isinstance(v, dict) else Inventory(rc, v)
            for rc, v in invs.items()}))


def _claim(store, consumer, rp, check=False, gen=None, **res):
    w = ConsumerWrite(consumer, {rp: res}, "proj", "user", gen, check_generation=check)
    store.write_sync(lambda tx: sa.replace_allocations(tx, [w]))


def test_microversion_parsing():
    assert parse_version_string("1.39") == Version(1, 39)
    assert parse_version_string("latest") == Version(1, 39)
    with pytest.raises(MicroversionError) as e:
        parse_version_string("pony.horse")
    assert e.value.status == 400
    with pytest.raises(MicroversionError) as e:
        parse_version_string("1.40")
    assert e.value.status == 406
    assert Version(1, 14).matches((1, 14), (1, 36)) and not Version(1, 37).matches(None, (1, 36))


def test_provider_names_parents_and_roots(store):
    _rp(store)
    with pytest.raises(PlacementError) as e:
        _rp(store, U2, "rp1")
    assert e.value.status == 409 and e.value.code == "placement.duplicate_name"
    _rp(store, U2, "child", parent=U1)
    child = store.read_sync(lambda tx: tx.provider(U2))
    assert child.root_uuid == U1 and child.parent_uuid == U1
    # a loop is refused; un-parenting needs 1.37
    with pytest.raises(PlacementError, match="loop"):
        store.write_sync(lambda tx: sp.update_provider(tx, U1, "rp1", U2, allow_reparent=True))
    with pytest.raises(PlacementError, match="un-parenting"):
        store.write_sync(lambda tx: sp.update_provider(tx, U2, "child", None))
    store.write_sync(lambda tx: sp.update_provider(tx, U2, "child", None, allow_reparent=True))
    assert store.read_sync(lambda tx: tx.provider(U2)).root_uuid == U2
    store.write_sync(lambda tx: sp.update_provider(tx, U2, "child", U1, allow_reparent=True))
    with pytest.raises(PlacementError) as e:
        store.write_sync(lambda tx: sp.delete_provider(tx, U1))
    assert e.value.code == "placement.resource_provider.cannot_delete_parent"


def test_capacity_constraints_and_usage(store):
    _rp(store, VCPU={"total": 10, "reserved": 2, "allocation_ratio": 2.0},
        DISK_GB={"total": 100, "min_unit": 10, "max_unit": 50, "step_size": 10})
    _claim(store, C1, U1, VCPU=16)  # capacity (10 - 2) * 2 = 16
    with pytest.raises(PlacementError, match="exceed the capacity") as e:
        _claim(store, C2, U1, VCPU=1)
    assert e.value.status == 409
    for bad in (5, 60, 15):
        with pytest.raises(PlacementError, match="constraints"):
            _claim(store, C2, U1, DISK_GB=bad)
    # replacing a consumer's own allocation frees its old amount first
    _claim(store, C1, U1, VCPU=10)
    _claim(store, C2, U1, VCPU=6)
    assert store.read_sync(lambda tx: sa.provider_usages(tx, U1)) == {"VCPU": 16, "DISK_GB": 0}
    # a class in use cannot be removed, its provider not deleted
    with pytest.raises(PlacementError) as e:
        store.write_sync(lambda tx: sp.set_inventories(tx, U1, None, {}))
    assert e.value.code == "placement.inventory.inuse"
    with pytest.raises(PlacementError) as e:
        store.write_sync(lambda tx: sp.delete_provider(tx, U1))
    assert e.value.status == 409
    store.write_sync(lambda tx: sa.delete_allocations(tx, C1))
    assert store.read_sync(lambda tx: tx.usages(U1)) == {"VCPU": 6}
    with pytest.raises(PlacementError) as e:
        store.write_sync(lambda tx: sa.delete_allocations(tx, C1))
    assert e.value.status == 404


def test_generations(store):
    _rp(store, VCPU=8)
    assert store.read_sync(lambda tx: tx.provider(U1)).generation == 1
    with pytest.raises(PlacementError) as e:
        store.write_sync(lambda tx: sp.set_inventories(tx, U1, 0, {}))
    assert e.value.code == "placement.concurrent_update"
    with pytest.raises(PlacementError, match="expected null but got 3"):
        _claim(store, C1, U1, check=True, gen=3, VCPU=1)
    _claim(store, C1, U1, check=True, gen=None, VCPU=1)
    consumer = store.read_sync(lambda tx: tx.consumer(C1))
    assert consumer.generation == 1
    assert store.read_sync(lambda tx: tx.provider(U1)).generation == 2
    with pytest.raises(PlacementError, match="expected 1 but got None"):
        _claim(store, C1, U1, check=True, gen=None, VCPU=2)
    _claim(store, C1, U1, check=True, gen=1, VCPU=2)
    assert store.read_sync(lambda tx: tx.consumer(C1)).generation == 2
    # deleting allocations does not bump the provider
    store.write_sync(lambda tx: sa.delete_allocations(tx, C1))
    assert store.read_sync(lambda tx: tx.provider(U1)).generation == 3


def test_failed_write_leaves_nothing(store):
    _rp(store, VCPU=4)
    _rp(store, U2, "rp2", DISK_GB=10)
    bad = ConsumerWrite(C1, {U1: {"VCPU": 2}, U2: {"DISK_GB": 11}}, "p", "u")
    with pytest.raises(PlacementError):
        store.write_sync(lambda tx: sa.replace_allocations(tx, [bad]))
    assert store.read_sync(lambda tx: (tx.usages(U1), tx.consumer(C1))) == ({}, None)
    assert store.read_sync(lambda tx: tx.provider(U1)).generation == 1
    # a reshape that fails midway (allocation over the new inventory) is undone
    _claim(store, C2, U1, VCPU=4)
    move = ConsumerWrite(C2, {U2: {"DISK_GB": 4}}, "p", "u", 1, check_generation=True)
    invs = {U1: (2, {}), U2: (1, {"DISK_GB": Inventory("DISK_GB", 3)})}
    with pytest.raises(PlacementError, match="capacity"):
        store.write_sync(lambda tx: sa.reshape(tx, invs, [move]))
    assert store.read_sync(lambda tx: tx.usages(U1)) == {"VCPU": 4}
    invs = {U1: (2, {}), U2: (1, {"DISK_GB": Inventory("DISK_GB", 8)})}
    store.write_sync(lambda tx: sa.reshape(tx, invs, [move]))
    assert store.read_sync(lambda tx: (tx.usages(U1), tx.usages(U2))) == ({}, {"DISK_GB": 4})


async def test_group_commit_isolates_failures(store):
    _rp(store, VCPU=3)
    results: dict[int, object] = {}

    async def one(i: int) -> None:
        w = ConsumerWrite(f"c0000000-0000-0000-0000-{i:012d}", {U1: {"VCPU": 1}}, "p", "u")
        try:
            await store.write(lambda tx: sa.replace_allocations(tx, [w]))
            results[i] = "ok"
        except PlacementError as exc:
            results[i] = exc.status

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(one, i)
    assert sorted(v for v in results.values() if v == "ok") == ["ok"] * 3
    assert sorted(v for v in results.values() if v != "ok") == [409] * 7
    snap = await store.snapshot()
    assert snap.providers[U1].usages == {"VCPU": 3}
    assert await store.snapshot() is snap  # cached while nothing changed
    _rp(store, U2, "rp2", DISK_GB=5)  # incremental refresh adds it last, in order
    snap2 = await store.snapshot()
    assert list(snap2.providers) == [U1, U2] and snap.providers.keys() == {U1}
    assert snap2.providers == store.read_sync(_collect)

    async def release(i: int) -> None:  # one batch touching both providers
        rp = U2 if i % 2 else U1
        w = ConsumerWrite(f"d0000000-0000-0000-0000-{i:012d}", {rp: {"DISK_GB" if i % 2
                                                                   else "VCPU": 1}}, "p", "u")
        with contextlib.suppress(PlacementError):
            await store.write(lambda tx: sa.replace_allocations(tx, [w]))

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(release, i)
    assert (await store.snapshot()).providers == store.read_sync(_collect)


def _run_concurrent_claims(seed: int, n_tasks: int, n_threads: int) -> None:
    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = PlacementStore(tmp, durable=False)
        rps = [f"aaaaaaaa-0000-0000-0000-{i:012d}" for i in range(3)]
        for i, rp in enumerate(rps):
            total = rnd.randint(1, 16)
            invs = {"VCPU": Inventory("VCPU", total, rnd.randint(0, min(2, total - 1)),
                                      allocation_ratio=rnd.choice([1.0, 1.5, 4.0])),
                    "MEMORY_MB": Inventory("MEMORY_MB", rnd.randint(512, 4096),
                                           step_size=rnd.choice([1, 256]))}
            store.write_sync(lambda tx, rp=rp, i=i: sp.create_provider(tx, rp, f"rp{i}", None))
            store.write_sync(lambda tx, rp=rp, invs=invs: sp.set_inventories(tx, rp, 0, invs))
        plans = [(f"c{seed % 1000:07d}-0000-0000-0000-{k:012d}", rnd.choice(rps),
                  rnd.randint(1, 6), rnd.choice([256, 512, 1024]), rnd.random() < 0.2)
                 for k in range(60)]
        ok: list[str] = []
        store.snapshot_sync()  # prime the cache: later snapshots are incremental

        def write_for(plan):  # noqa: ANN001, ANN202
            consumer, rp, vcpu, mem, release = plan
            allocs = {} if release else {rp: {"VCPU": vcpu, "MEMORY_MB": mem}}
            return ConsumerWrite(consumer, allocs, "p", "u")

        def thread_worker(chunk) -> None:  # noqa: ANN001
            for plan in chunk:
                try:
                    store.write_sync(lambda tx, p=plan: sa.replace_allocations(tx, [write_for(p)]))
                    ok.append(plan[0])
                except PlacementError:
                    pass

        async def task_worker(chunk) -> None:  # noqa: ANN001
            for plan in chunk:
                try:
                    await store.claim([write_for(plan)])
                    ok.append(plan[0])
                except PlacementError:
                    pass
                await trio.lowlevel.checkpoint()

        chunks = [plans[i::n_tasks + n_threads] for i in range(n_tasks + n_threads)]
        threads = [threading.Thread(target=thread_worker, args=(c,)) for c in chunks[:n_threads]]

        async def main() -> None:
            for t in threads:
                t.start()
            async with trio.open_nursery() as nursery:
                for c in chunks[n_threads:]:
                    nursery.start_soon(task_worker, c)
            for t in threads:
                await trio.to_thread.run_sync(t.join)

        trio.run(main)
        snap = store.snapshot_sync()
        full = store.read_sync(_collect)
        assert list(snap.providers) == list(full) and dict(snap.providers) == full
        consumers = store.read_sync(lambda tx: list(tx.consumers()))
        totals: dict[tuple[str, str], int] = {}
        for c in consumers:
            for rp, res in c.allocations.items():
                for rc, n in res.items():
                    totals[rp, rc] = totals.get((rp, rc), 0) + n
        for rp, state in snap.providers.items():
            for rc, inv in state.inventories.items():
                used = state.usages.get(rc, 0)
                assert used <= inv.capacity, (seed, rp, rc, used, inv)  # invariant 7
                assert used == totals.get((rp, rc), 0)
        assert any(not p[4] for p in plans if p[0] in ok) or not ok
        store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_tasks=st.integers(1, 6), n_threads=st.integers(0, 3))
def test_concurrent_claims_never_oversubscribe(seed: int, n_tasks: int, n_threads: int) -> None:
    _run_concurrent_claims(seed, n_tasks, n_threads)


def test_reshape_generations_follow_placement(store):
    """Placement's reshaper.yaml arithmetic: interim inventory, replace_all and
    final inventory each bump a provider once."""
    _rp(store, U1, VCPU={"total": 10, "max_unit": 8}, DISK_GB=2048)
    c0, c1, c2, new = (f"e0000000-0000-0000-0000-00000000000{i}" for i in range(4))
    _claim(store, c0, U1, DISK_GB=1000)
    _claim(store, c1, U1, VCPU=6)
    w = ConsumerWrite(c2, {U1: {"DISK_GB": 20, "VCPU": 1}}, "p", "u")
    store.write_sync(lambda tx: sa.replace_allocations(tx, [w]))
    _rp(store, U2, "child", parent=U1)
    gen = lambda u: store.read_sync(lambda tx: tx.provider(u)).generation  # noqa: E731
    g1 = gen(U1)

    def cw(c, allocs, g):  # noqa: ANN001, ANN202
        return ConsumerWrite(c, allocs, "p", "u", g, check_generation=True)

    vcpu = Inventory("VCPU", 10, max_unit=8)
    store.write_sync(lambda tx: sa.reshape(
        tx, {U1: (g1, {"DISK_GB": Inventory("DISK_GB", 2048)}), U2: (0, {"VCPU": vcpu})},
        [cw(c0, {U1: {"DISK_GB": 1000}}, 1), cw(c1, {U2: {"VCPU": 6}}, 1),
         cw(c2, {U1: {"DISK_GB": 20}, U2: {"VCPU": 1}}, 1)]))
    assert (gen(U1), gen(U2)) == (g1 + 3, 3)
    assert store.read_sync(lambda tx: (tx.usages(U1), tx.usages(U2))) == \
        ({"DISK_GB": 1020}, {"VCPU": 7})
    store.write_sync(lambda tx: sa.reshape(
        tx, {U1: (g1 + 3, {"DISK_GB": Inventory("DISK_GB", 2048), "VCPU": vcpu}), U2: (3, {})},
        [cw(c0, {U1: {"DISK_GB": 1000}}, 2), cw(new, {U1: {"VCPU": 8}}, None),
         cw(c1, {}, 2), cw(c2, {U1: {"DISK_GB": 20, "VCPU": 1}}, 2)]))
    assert (gen(U1), gen(U2)) == (g1 + 6, 5)
    assert store.read_sync(lambda tx: (tx.usages(U1), tx.usages(U2), tx.consumer(c1))) == \
        ({"DISK_GB": 1020, "VCPU": 9}, {}, None)
