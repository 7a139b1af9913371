"""The scheduler's pure decisions: filters, weighers, server groups, locality, heartbeats."""

from __future__ import annotations

import pytest

from scheduler._nova_core import (
    Candidate,
    GroupState,
    NoValidHost,
    PlaceRequest,
    down_hosts,
    parse_zone,
    place,
)

R = {"VCPU": 1, "MEMORY_MB": 512}


def hosts(zones=3, per_zone=2, vcpus=8, mem=8192):
    return [Candidate(f"h{z}{k}", 1, z, {"VCPU": vcpus, "MEMORY_MB": mem})
            for z in range(1, zones + 1) for k in range(per_zone)]


def test_anti_affinity_spreads_over_hosts_and_zones():
    cands = hosts()
    got = place(PlaceRequest(["a", "b", "c"], R, GroupState("g", "anti-affinity")), cands)
    chosen = [p.host for p in got]
    assert len(set(chosen)) == 3
    assert len({h[1] for h in chosen}) == 3  # one per zone
    with pytest.raises(NoValidHost):
        place(PlaceRequest([str(i) for i in range(7)], R, GroupState("g", "anti-affinity")), cands)


def test_affinity_packs_and_follows_existing_members():
    cands = hosts()
    got = place(PlaceRequest(["a", "b", "c", "d"], R, GroupState("g", "affinity")), cands)
    assert len({p.host for p in got}) == 1
    g = GroupState("g", "affinity", {"old": "h31"})
    assert {p.host for p in place(PlaceRequest(["x", "y"], R, g), cands)} == {"h31"}


def test_affinity_fails_when_the_host_is_full():
    cands = hosts(vcpus=2)
    with pytest.raises(NoValidHost):
        place(PlaceRequest(["a", "b", "c"], R, GroupState("g", "affinity")), cands)


def test_soft_policies_prefer_but_do_not_require():
    cands = hosts(zones=1, per_zone=2, vcpus=2)
    got = place(PlaceRequest(["a", "b", "c"], R, GroupState("g", "soft-affinity")), cands)
    hs = [p.host for p in got]
    assert hs[0] == hs[1] and hs[2] != hs[0]  # packs until full, then spills over
    got = place(PlaceRequest(["a", "b", "c"], R, GroupState("g", "soft-anti-affinity")), cands)
    assert len({p.host for p in got}) == 2  # spreads, then doubles up rather than failing


def test_locality_prefers_replica_holder_then_its_zone():
    cands = hosts()
    req = PlaceRequest(["a"], R, None, frozenset({"h21"}), frozenset({(1, 2)}))
    assert place(req, cands)[0].host == "h21"
    req = PlaceRequest(["a"], R, None, frozenset({"elsewhere"}), frozenset({(1, 3)}))
    assert place(req, cands)[0].host in {"h30", "h31"}


def test_weighers_prefer_free_ram_and_capacity_is_consumed():
    cands = [Candidate("small", 1, 1, {"VCPU": 8, "MEMORY_MB": 1024}),
             Candidate("big", 1, 1, {"VCPU": 8, "MEMORY_MB": 4096})]
    got = place(PlaceRequest(["a", "b", "c"], {"MEMORY_MB": 1024}), cands)
    assert [p.host for p in got][0] == "big"
    got = place(PlaceRequest([str(i) for i in range(5)], {"MEMORY_MB": 1024}), cands)
    assert sorted(p.host for p in got).count("big") == 4  # never over what is free
    with pytest.raises(NoValidHost):
        place(PlaceRequest([str(i) for i in range(6)], {"MEMORY_MB": 1024}), cands)


def test_down_hosts_and_zone_names():
    assert down_hosts({"a": 0.0, "b": 5.0, "c": 9.5}, now=10.0, interval=4.0) == ["a", "b"]
    assert down_hosts({"a": 6.0}, now=10.0, interval=4.0) == []
    assert parse_zone("r1z2") == (1, 2) and parse_zone("z3") == (None, 3)
    assert parse_zone("4") == (None, 4)
    with pytest.raises(ValueError):
        parse_zone("nowhere")
