"""The placement benchmark's data set and how it is loaded into each system.

``dataset(n)``: ``n`` compute-node providers (VCPU 32 x16, MEMORY_MB 128 GiB
x1.5, DISK_GB 2000), traits (HW_CPU_X86_AVX2 on half, STORAGE_DISK_SSD on a
third, HW_NIC_SRIOV on a tenth), ten aggregates (provider i in aggregate
i % 10) and an existing allocation (VCPU 2, 2 GiB, 20 GB) on every other
provider, plus ``HOT`` small providers (VCPU 40) for the oversubscription
check. Deterministic (uuids from the index).

Both systems are loaded directly, not through their APIs (loading 10,000
providers through Placement's API takes over 9 minutes): ringstack through
its store's write API in one transaction, Placement by SQL into the sqlite
database its ``placement-manage db sync`` created, using the resource class
and trait ids Placement itself synced. Both then serve from that state.
"""

from __future__ import annotations

import sqlite3
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

HOT = 4
HOT_VCPU = 40
PROJECT, USER = "b0b0b0b0-0000-4000-8000-000000000001", "b0b0b0b0-0000-4000-8000-000000000002"


def _u(kind: int, i: int) -> str:
    return str(uuidlib.UUID(int=(kind << 64) | i))


@dataclass(slots=True)
class BenchProvider:
    uuid: str
    name: str
    inventories: dict[str, dict[str, Any]]
    traits: list[str]
    aggregates: list[str]
    allocation: dict[str, int] | None = None
    consumer: str | None = None


@dataclass(slots=True)
class Dataset:
    providers: list[BenchProvider] = field(default_factory=list)
    aggregates: list[str] = field(default_factory=list)

    @property
    def hot(self) -> list[BenchProvider]:
        return self.providers[-HOT:]


def dataset(n: int) -> Dataset:
    aggs = [_u(2, k) for k in range(10)]
    out = Dataset(aggregates=aggs)
    for i in range(n):
        traits = []
        if i % 2 == 0:
            traits.append("HW_CPU_X86_AVX2")
        if i % 3 == 0:
            traits.append("STORAGE_DISK_SSD")
        if i % 10 == 0:
            traits.append("HW_NIC_SRIOV")
        inv = {"VCPU": {"total": 32, "allocation_ratio": 16.0},
               "MEMORY_MB": {"total": 131072, "reserved": 512, "allocation_ratio": 1.5},
               "DISK_GB": {"total": 2000, "allocation_ratio": 1.0}}
        p = BenchProvider(_u(1, i), f"cn{i:05d}", inv, traits, [aggs[i % 10]])
        if i % 2 == 1:
            p.allocation = {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 20}
            p.consumer = _u(3, i)
        out.providers.append(p)
    for k in range(HOT):
        out.providers.append(BenchProvider(_u(4, k), f"hot{k}", {"VCPU": {"total": HOT_VCPU}},
                                           [], []))
    return out


def _full(inv: dict[str, Any]) -> dict[str, Any]:
    return {"total": inv["total"], "reserved": inv.get("reserved", 0), "min_unit": 1,
            "max_unit": inv.get("max_unit", inv["total"]), "step_size": 1,
            "allocation_ratio": inv.get("allocation_ratio", 1.0)}


def load_ringstack(data_dir: str, ds: Dataset) -> None:
    """Write the data set into a ringstack store (one transaction)."""
    from scheduler._store_allocations import replace_allocations
    from scheduler._store_providers import (
        create_provider,
        set_inventories,
        set_provider_aggregates,
        set_provider_traits,
    )
    from scheduler._store_records import ConsumerWrite, Inventory
    from scheduler.store import PlacementStore

    store = PlacementStore(data_dir)

    def fill(tx: Any) -> None:
        writes = []
        for p in ds.providers:
            create_provider(tx, p.uuid, p.name, None)
            set_inventories(tx, p.uuid, None, {rc: Inventory(rc, **_full(v))
                                               for rc, v in p.inventories.items()})
            if p.traits:
                set_provider_traits(tx, p.uuid, None, p.traits)
            if p.aggregates:
                set_provider_aggregates(tx, p.uuid, None, p.aggregates, bump=True)
            if p.allocation:
                writes.append(ConsumerWrite(p.consumer or "", {p.uuid: p.allocation},
                                            PROJECT, USER))
        replace_allocations(tx, writes)

    try:
        store.write_sync(fill)
    finally:
        store.close()


def load_placement(db_path: str, ds: Dataset) -> None:
    """Insert the data set into Placement's sqlite database (after db sync and
    one start of the service, so its standard classes and traits exist)."""
    db = sqlite3.connect(db_path)
    try:
        rcs = dict(db.execute("select name, id from resource_classes"))
        traits = dict(db.execute("select name, id from traits"))
        now = "2026-01-01 00:00:00"
        db.execute("insert into projects (id, external_id, created_at) values (1, ?, ?)",
                   (PROJECT, now))
        db.execute("insert into users (id, external_id, created_at) values (1, ?, ?)",
                   (USER, now))
        db.executemany("insert into placement_aggregates (id, uuid, created_at) values (?, ?, ?)",
                       [(k + 1, a, now) for k, a in enumerate(ds.aggregates)])
        agg_id = {a: k + 1 for k, a in enumerate(ds.aggregates)}
        rps, invs, rpt, rpa, cons, allocs = [], [], [], [], [], []
        for i, p in enumerate(ds.providers, start=1):
            rps.append((i, p.uuid, p.name, 1, i, None, now))
            for rc, v in p.inventories.items():
                f = _full(v)
                invs.append((i, rcs[rc], f["total"], f["reserved"], f["min_unit"],
                             f["max_unit"], f["step_size"], f["allocation_ratio"], now))
            rpt += [(traits[t], i, now) for t in p.traits]
            rpa += [(i, agg_id[a], now) for a in p.aggregates]
            if p.allocation:
                cons.append((len(cons) + 1, p.consumer, 1, 1, 1, now))
                allocs += [(i, p.consumer, rcs[rc], n, now) for rc, n in p.allocation.items()]
        db.executemany("insert into resource_providers (id, uuid, name, generation, "
                       "root_provider_id, parent_provider_id, created_at) values "
                       "(?, ?, ?, ?, ?, ?, ?)", rps)
        db.executemany("insert into inventories (resource_provider_id, resource_class_id, "
                       "total, reserved, min_unit, max_unit, step_size, allocation_ratio, "
                       "created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)", invs)
        db.executemany("insert into resource_provider_traits (trait_id, resource_provider_id, "
                       "created_at) values (?, ?, ?)", rpt)
        db.executemany("insert into resource_provider_aggregates (resource_provider_id, "
                       "aggregate_id, created_at) values (?, ?, ?)", rpa)
        db.executemany("insert into consumers (id, uuid, project_id, user_id, generation, "
                       "created_at) values (?, ?, ?, ?, ?, ?)", cons)
        db.executemany("insert into allocations (resource_provider_id, consumer_id, "
                       "resource_class_id, used, created_at) values (?, ?, ?, ?, ?)", allocs)
        db.commit()
    finally:
        db.close()
