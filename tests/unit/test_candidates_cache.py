"""The provider-arrays cache: a usage-only change takes the cheap path and
gives exactly what a full rebuild gives; a structural change rebuilds."""

from __future__ import annotations

import numpy as np

from scheduler import _cand_cache
from scheduler._store_providers import (
    create_provider,
    set_inventories,
    set_provider_aggregates,
    set_provider_traits,
)
from scheduler._store_records import ConsumerWrite, Inventory
from scheduler.store import PlacementStore

A, B = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"
AGG = "00000000-0000-0000-0000-0000000000ff"


def _fill(tx):
    for u, name in ((A, "a"), (B, "b")):
        create_provider(tx, u, name, None)
        set_inventories(tx, u, None, {"VCPU": Inventory("VCPU", 8),
                                      "MEMORY_MB": Inventory("MEMORY_MB", 1024)})


async def _fresh(store):
    _cand_cache._cache.pop(id(store), None)
    return await _cand_cache.arrays_for(store)


async def test_usage_only_change_equals_full_rebuild(tmp_path):
    store = PlacementStore(str(tmp_path), durable=False)
    try:
        store.write_sync(_fill)
        first = await _cand_cache.arrays_for(store)
        await store.claim([ConsumerWrite("c1", {A: {"VCPU": 3, "MEMORY_MB": 100}}, "p", "u")])
        cheap = await _cand_cache.arrays_for(store)
        assert cheap.fingerprint == first.fingerprint and cheap.version > first.version
        assert cheap.cache == {}
        full = await _fresh(store)
        assert np.array_equal(cheap.used, full.used) and cheap.uuids == full.uuids
        assert cheap.used[cheap.index[A], cheap.rc_index["VCPU"]] == 3
        assert first.used.sum() == 0  # the old arrays are not modified
        # structural changes (traits, aggregates, inventories) rebuild
        store.write_sync(lambda tx: set_provider_traits(tx, B, None, ["HW_CPU_X86_AVX2"]))
        after = await _cand_cache.arrays_for(store)
        assert after.fingerprint != cheap.fingerprint
        assert after.traits[after.index[B]] == ("HW_CPU_X86_AVX2",)
        store.write_sync(lambda tx: set_provider_aggregates(tx, A, None, [AGG], bump=True))
        assert AGG in (await _cand_cache.arrays_for(store)).agg_index
        store.write_sync(lambda tx: set_inventories(tx, B, None, {"VCPU": Inventory("VCPU", 2)}))
        last = await _cand_cache.arrays_for(store)
        assert last.cap_int[last.index[B], last.rc_index["VCPU"]] == 2
    finally:
        store.close()
