"""Unit tests of replicator.object_core (the replicator's decisions)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.object_core import (
    PassStats,
    Throttle,
    batches,
    can_drop,
    classify,
    confirmed,
    full_rehash_due,
    parse_hashes,
    suffix_path,
    suffixes_to_push,
)
from replicator.peers import Peer, local_node


@dataclass(frozen=True)
class Dev:
    id: int
    address: str
    port: int
    device: str


A, B, C, D = (Dev(i, "127.0.0.1", 6000 + 10 * i, f"d{i}") for i in range(4))


def test_classify_primary_peers_are_the_other_primaries() -> None:
    role = classify(7, "d1", ("127.0.0.1", 6010), [A, B, C])
    assert role.primary and role.partition == 7
    assert [p.device for p in role.peers] == ["d0", "d2"]


def test_classify_handoff_reverts_to_every_primary() -> None:
    role = classify(7, "d3", ("127.0.0.1", 6030), [A, B, C])
    assert not role.primary
    assert [p.device for p in role.peers] == ["d0", "d1", "d2"]


def test_same_node_other_drive_is_a_handoff() -> None:
    # the partition sits on d9 of B's node, but the ring names d1 there
    role = classify(7, "d9", ("127.0.0.1", 6010), [A, B, C])
    assert not role.primary and Peer.of(B) in role.peers


def test_local_node_by_drive_names() -> None:
    assert local_node([A, None, B, C], ["d1"]) == ("127.0.0.1", 6010)
    with pytest.raises(ValueError, match="--node"):
        local_node([A, B], ["d0", "d1"])  # two nodes
    with pytest.raises(ValueError, match="none"):
        local_node([A, B], ["zz"])


def test_suffixes_to_push() -> None:
    local = {"abc": "1", "def": "2", "012": "3"}
    assert suffixes_to_push(local, {"abc": "1", "def": "x"}) == ["012", "def"]
    assert suffixes_to_push(local, local) == []
    assert suffixes_to_push({}, {"abc": "1"}) == []  # push only: the peer pushes its own


def test_can_drop_needs_every_primary_equal() -> None:
    prim = [Peer.of(A), Peer.of(B), Peer.of(C)]
    local = {"abc": "1"}
    equal = {p: {"abc": "1", "fff": "9"} for p in prim}
    assert can_drop(local, equal, prim)
    assert not can_drop(local, {**equal, prim[2]: None}, prim)  # one unreachable
    assert not can_drop(local, {**equal, prim[1]: {"abc": "2"}}, prim)  # one differs
    assert not can_drop(local, {p: equal[p] for p in prim[:2]}, prim)  # one never asked
    assert not can_drop(local, {}, [])
    assert can_drop({}, {}, prim)  # nothing local to lose


@given(st.dictionaries(st.sampled_from(["abc", "def", "012", "fff"]), st.sampled_from("12")),
       st.dictionaries(st.sampled_from(["abc", "def", "012", "fff"]), st.sampled_from("12")))
def test_push_then_equal_means_confirmed(local: dict[str, str], remote: dict[str, str]) -> None:
    push = suffixes_to_push(local, remote)
    after = {**remote, **{s: local[s] for s in push}}
    assert confirmed(local, after)
    assert confirmed(local, remote) == (not push)


def test_batches_and_paths() -> None:
    sfx = [f"{i:03x}" for i in range(600)]
    groups = batches(sfx)
    assert [len(g) for g in groups] == [256, 256, 88] and sum(groups, []) == sfx
    assert batches([]) == []
    assert suffix_path("d1", 5) == "/d1/5"
    assert suffix_path("d1", 5, ["abc", "def"]) == "/d1/5/abc-def"


def test_full_rehash_due() -> None:
    assert [full_rehash_due(i, 3) for i in range(7)] == [True, False, False, True, False, False, True]
    assert not any(full_rehash_due(i, 0) for i in range(5))


def test_parse_hashes() -> None:
    assert parse_hashes({"abc": "h"}) == {"abc": "h"}
    for bad in ([], {"abc": 1}, "x"):
        with pytest.raises(ValueError):
            parse_hashes(bad)


def test_throttle() -> None:
    t = Throttle(1000.0)
    assert t.delay(0.0, 500) == 0.0
    assert t.delay(0.0, 500) == pytest.approx(0.5)
    assert t.delay(0.2, 1000) == pytest.approx(0.8)
    assert t.delay(100.0, 10) == 0.0  # idle time is not banked beyond now
    assert Throttle(0).delay(0.0, 10**9) == 0.0


def test_pass_stats_changed() -> None:
    s = PassStats()
    assert not s.changed and s.as_dict()["changed"] is False
    s.partitions_dropped = 1
    assert s.changed
