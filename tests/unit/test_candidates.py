"""Allocation candidates core: Placement's rules on hand-built provider sets,
plus properties (hypothesis) that every answer fits and honours the filters."""

from __future__ import annotations

import json
import uuid as uuidlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler._cand_arrays import build_arrays
from scheduler._cand_render import render
from scheduler._store_records import Inventory, PlacementError, Provider, ProviderState
from scheduler.candidates import CandidateQuery, RequestGroup, find_candidates

AGG1, AGG2 = str(uuidlib.UUID(int=101)), str(uuidlib.UUID(int=102))


def U(n: int) -> str:
    return str(uuidlib.UUID(int=n))


def prov(n, inv, used=None, traits=(), aggs=(), parent=None, root=None):
    u = U(n)
    p = Provider(u, f"rp{n}", 0, None if parent is None else U(parent),
                 U(root) if root is not None else u, float(n))
    invs = {rc: (Inventory(rc, v) if isinstance(v, int) else Inventory(rc, **v))
            for rc, v in inv.items()}
    return u, ProviderState(p, invs, dict(used or {}), frozenset(traits), frozenset(aggs))


def arrays(*states, custom=()):
    return build_arrays(1, dict(states), {c: i for i, c in enumerate(custom)}, ())


def query(*groups, **kw):
    return CandidateQuery(tuple(groups), **kw)


def G(suffix="", resources=(), required=(), forbidden=(), member_of=(), forbidden_aggs=(),
      in_tree=None):
    return RequestGroup(suffix, tuple(resources), tuple(frozenset(s) for s in required),
                        frozenset(forbidden), tuple(frozenset(s) for s in member_of),
                        frozenset(forbidden_aggs), in_tree)


def uuids_of(arr, cands):
    return [sorted({arr.uuids[p] for p, _, _ in a.resources}) for a in cands.requests]


def body(arr, cands, version=(1, 39), requested=frozenset({"VCPU"})):
    return json.loads(render(arr, cands, requested, version))


def test_capacity_reserved_ratio_and_units():
    arr = arrays(
        prov(1, {"VCPU": {"total": 4, "reserved": 1, "allocation_ratio": 2.0}}, {"VCPU": 5}),
        prov(2, {"VCPU": {"total": 8, "max_unit": 2}}),
        prov(3, {"VCPU": {"total": 8, "step_size": 2}}),
        prov(4, {"VCPU": {"total": 8, "min_unit": 2}}),
        prov(5, {"MEMORY_MB": 1024}),
    )
    # rp1: (4-1)*2 = 6 capacity, 5 used -> only 1 fits
    got = uuids_of(arr, find_candidates(arr, query(G(resources=[("VCPU", 1)]))))
    assert got == [[U(1)], [U(2)]]
    got = uuids_of(arr, find_candidates(arr, query(G(resources=[("VCPU", 2)]))))
    assert got == [[U(2)], [U(3)], [U(4)]]
    got = uuids_of(arr, find_candidates(arr, query(G(resources=[("VCPU", 3)]))))
    assert got == [[U(4)]]


def test_traits_forbidden_any_of_and_unknown_names():
    arr = arrays(prov(1, {"VCPU": 4}, traits={"HW_CPU_X86_AVX2", "HW_CPU_X86_SSE"}),
                 prov(2, {"VCPU": 4}, traits={"HW_CPU_X86_SSE"}),
                 prov(3, {"VCPU": 4}))
    r = [("VCPU", 1)]
    assert uuids_of(arr, find_candidates(arr, query(G(resources=r, required=[{"HW_CPU_X86_SSE"}])))) \
        == [[U(1)], [U(2)]]
    assert uuids_of(arr, find_candidates(arr, query(G(resources=r, forbidden={"HW_CPU_X86_AVX2"})))) \
        == [[U(2)], [U(3)]]
    got = find_candidates(arr, query(G(resources=r, required=[{"HW_CPU_X86_AVX2", "HW_NIC_SRIOV"}])))
    assert uuids_of(arr, got) == [[U(1)]]
    with pytest.raises(PlacementError) as exc:
        find_candidates(arr, query(G(resources=r, required=[{"CUSTOM_NOPE"}])))
    assert exc.value.status == 400 and "No such trait(s): CUSTOM_NOPE." in exc.value.detail
    with pytest.raises(PlacementError) as exc:
        find_candidates(arr, query(G(resources=[("CUSTOM_NOPE", 1)])))
    assert "No such resource class CUSTOM_NOPE" in exc.value.detail


def test_member_of_and_forbidden_aggregates():
    arr = arrays(prov(1, {"VCPU": 4}, aggs={AGG1}), prov(2, {"VCPU": 4}, aggs={AGG2}),
                 prov(3, {"VCPU": 4}, aggs={AGG1, AGG2}), prov(4, {"VCPU": 4}))
    r = [("VCPU", 1)]
    assert uuids_of(arr, find_candidates(arr, query(G(resources=r, member_of=[{AGG1}])))) \
        == [[U(1)], [U(3)]]
    assert uuids_of(arr, find_candidates(arr, query(G(resources=r, member_of=[{AGG1}, {AGG2}])))) \
        == [[U(3)]]
    assert uuids_of(arr, find_candidates(arr, query(G(resources=r, member_of=[{AGG1, AGG2}])))) \
        == [[U(1)], [U(2)], [U(3)]]
    assert uuids_of(arr, find_candidates(arr, query(G(resources=r, forbidden_aggs={AGG1})))) \
        == [[U(2)], [U(4)]]
    assert find_candidates(arr, query(G(resources=r, member_of=[{U(999)}]))).requests == []


def _tree():
    # cn1 (VCPU) with two children holding SRIOV_NET_VF; cn2 flat
    return arrays(
        prov(1, {"VCPU": 8}, traits={"HW_CPU_X86_AVX2"}),
        prov(2, {"SRIOV_NET_VF": 2}, parent=1, root=1, traits={"CUSTOM_PHYSNET_A"}),
        prov(3, {"SRIOV_NET_VF": 4}, parent=1, root=1, traits={"CUSTOM_PHYSNET_B"}),
        prov(4, {"VCPU": 8, "SRIOV_NET_VF": 1}),
        custom=("CUSTOM_PHYSNET_A", "CUSTOM_PHYSNET_B"),
    )


def test_nested_unsuffixed_group_spreads_over_the_tree():
    arr = _tree()
    arr.known_traits |= {"CUSTOM_PHYSNET_A", "CUSTOM_PHYSNET_B"}
    q = query(G(resources=[("VCPU", 1), ("SRIOV_NET_VF", 1)]))
    got = uuids_of(arr, find_candidates(arr, q))
    assert got == [[U(1), U(2)], [U(1), U(3)], [U(4)]]
    # summaries: the whole tree of cn1 (3 providers) and cn2
    assert sorted(find_candidates(arr, q).summaries) == [0, 1, 2, 3]
    # required traits are checked on the union of the providers used
    q = query(G(resources=[("VCPU", 1), ("SRIOV_NET_VF", 1)],
                required=[{"CUSTOM_PHYSNET_B"}, {"HW_CPU_X86_AVX2"}]))
    assert uuids_of(arr, find_candidates(arr, q)) == [[U(1), U(3)]]
    # before 1.29 a request may not use two providers of one tree
    q = query(G(resources=[("VCPU", 1), ("SRIOV_NET_VF", 1)]), nested_aware=False)
    c = find_candidates(arr, q)
    assert uuids_of(arr, c) == [[U(4)]] and c.summaries == [3]


def test_granular_groups_isolate_and_same_subtree():
    arr = _tree()
    vf = [("SRIOV_NET_VF", 1)]
    q = query(G("1", vf), G("2", vf), group_policy="none")
    got = uuids_of(arr, find_candidates(arr, q))
    assert [U(2), U(3)] in got and [U(2)] in got and [U(4)] not in got  # cn2 has 1 VF only
    q = query(G("1", vf), G("2", vf), group_policy="isolate")
    assert uuids_of(arr, find_candidates(arr, q)) == [[U(2), U(3)], [U(2), U(3)]]
    # same_subtree: VCPU from the root and a VF below it are in one subtree
    q = query(G("a", [("VCPU", 1)]), G("b", vf), group_policy="none",
              same_subtrees=(frozenset({"a", "b"}),))
    got = uuids_of(arr, find_candidates(arr, q))
    assert [U(1), U(2)] in got and [U(1), U(3)] in got and [U(4)] in got
    q = query(G("a", vf), G("b", vf), group_policy="isolate",
              same_subtrees=(frozenset({"a", "b"}),))
    assert find_candidates(arr, q).requests == []  # siblings: neither is the other's ancestor


def test_root_required_and_in_tree():
    arr = _tree()
    q = query(G(resources=[("SRIOV_NET_VF", 1)]), root_required=frozenset({"HW_CPU_X86_AVX2"}))
    assert uuids_of(arr, find_candidates(arr, q)) == [[U(2)], [U(3)]]
    q = query(G(resources=[("SRIOV_NET_VF", 1)]), root_forbidden=frozenset({"HW_CPU_X86_AVX2"}))
    assert uuids_of(arr, find_candidates(arr, q)) == [[U(4)]]
    q = query(G(resources=[("SRIOV_NET_VF", 1)], in_tree=U(3)))
    assert uuids_of(arr, find_candidates(arr, q)) == [[U(2)], [U(3)]]


def test_sharing_provider_anchors_each_root_in_its_aggregate():
    arr = arrays(prov(1, {"VCPU": 4}, aggs={AGG1}), prov(2, {"VCPU": 4}, aggs={AGG1}),
                 prov(3, {"DISK_GB": 100}, aggs={AGG1}, traits={"MISC_SHARES_VIA_AGGREGATE"}),
                 prov(4, {"VCPU": 4}))
    q = query(G(resources=[("VCPU", 1), ("DISK_GB", 10)]))
    got = uuids_of(arr, find_candidates(arr, q))
    assert got == [[U(1), U(3)], [U(2), U(3)]]


def test_limit_is_a_prefix_and_summaries_follow():
    arr = arrays(*[prov(n, {"VCPU": 4, "MEMORY_MB": 1024}) for n in range(1, 30)])
    q = query(G(resources=[("VCPU", 1)]))
    full = find_candidates(arr, q)
    lim = find_candidates(arr, query(G(resources=[("VCPU", 1)]), limit=5))
    assert uuids_of(arr, lim) == uuids_of(arr, full)[:5]
    assert len(body(arr, lim)["provider_summaries"]) == 5
    rnd = find_candidates(arr, query(G(resources=[("VCPU", 1)]), limit=5, randomize=True))
    assert len(rnd.requests) == 5 and all(r in uuids_of(arr, full) for r in uuids_of(arr, rnd))


def test_render_shapes_per_microversion():
    arr = arrays(prov(1, {"VCPU": 4, "MEMORY_MB": 1024}, {"VCPU": 1}, traits={"HW_CPU_X86_SSE"}))
    c = find_candidates(arr, query(G(resources=[("VCPU", 1)])))
    b = body(arr, c, (1, 10))
    assert b["allocation_requests"] == [{"allocations": [
        {"resource_provider": {"uuid": U(1)}, "resources": {"VCPU": 1}}]}]
    assert b["provider_summaries"] == {U(1): {"resources": {"VCPU": {"capacity": 4, "used": 1}}}}
    b = body(arr, c, (1, 17))
    assert b["allocation_requests"] == [{"allocations": {U(1): {"resources": {"VCPU": 1}}}}]
    assert b["provider_summaries"][U(1)]["traits"] == ["HW_CPU_X86_SSE"]
    b = body(arr, c, (1, 27))
    assert set(b["provider_summaries"][U(1)]["resources"]) == {"VCPU", "MEMORY_MB"}
    b = body(arr, c, (1, 29))
    assert b["provider_summaries"][U(1)]["root_provider_uuid"] == U(1)
    assert b["provider_summaries"][U(1)]["parent_provider_uuid"] is None
    assert "mappings" not in b["allocation_requests"][0]
    b = body(arr, c, (1, 34))
    assert b["allocation_requests"][0]["mappings"] == {"": [U(1)]}


# --- properties ---------------------------------------------------------------------
TRAITS = ["HW_CPU_X86_SSE", "HW_CPU_X86_AVX2", "HW_NIC_SRIOV"]
inv_st = st.fixed_dictionaries({
    "total": st.integers(0, 16), "reserved": st.integers(0, 4),
    "min_unit": st.integers(1, 3), "max_unit": st.integers(1, 16), "step_size": st.integers(1, 3),
    "allocation_ratio": st.sampled_from([0.5, 1.0, 1.5, 4.0])})
provider_st = st.tuples(
    st.dictionaries(st.sampled_from(["VCPU", "MEMORY_MB"]), inv_st, min_size=1),
    st.integers(0, 20), st.sets(st.sampled_from(TRAITS)), st.sets(st.sampled_from([AGG1, AGG2])))


@settings(max_examples=60, deadline=None)
@given(st.lists(provider_st, min_size=1, max_size=12),
       st.dictionaries(st.sampled_from(["VCPU", "MEMORY_MB"]), st.integers(1, 6), min_size=1),
       st.lists(st.sets(st.sampled_from(TRAITS), min_size=1), max_size=2),
       st.sets(st.sampled_from(TRAITS), max_size=1),
       st.lists(st.sets(st.sampled_from([AGG1, AGG2]), min_size=1), max_size=2))
def test_every_candidate_fits_and_honours_filters(provs, resources, required, forbidden,
                                                    member_of):
    forbidden = forbidden - set().union(*required) if required else forbidden
    states = [prov(n + 1, inv, {rc: used for rc in inv}, traits, aggs)
              for n, (inv, used, traits, aggs) in enumerate(provs)]
    arr = arrays(*states)
    q = query(G(resources=list(resources.items()), required=required, forbidden=forbidden,
                member_of=member_of))
    got = {u[0] for u in uuids_of(arr, find_candidates(arr, q))}
    # reference: the rule written out per provider, with plain Python
    want = set()
    for u, s in states:
        ok = all(
            rc in s.inventories
            and s.usages.get(rc, 0) + n <= (s.inventories[rc].total - s.inventories[rc].reserved)
            * s.inventories[rc].allocation_ratio
            and s.inventories[rc].min_unit <= n <= s.inventories[rc].max_unit
            and n % s.inventories[rc].step_size == 0 for rc, n in resources.items())
        ok = ok and all(set(r) & s.traits for r in required) and not (set(forbidden) & s.traits)
        ok = ok and all(set(m) & s.aggregates for m in member_of)
        if ok:
            want.add(u)
    assert got == want
