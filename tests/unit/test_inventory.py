"""Inventory: hosts, drives, never-reused ids, history, JSON round trip, errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ring.inventory import Drive, Host, Inventory, InventoryError


def _inv() -> Inventory:
    inv = Inventory(clock=lambda: 42.0)
    inv.add_host(Host("h1", 1, 2, "10.0.0.1", 6200, vcpus=8, memory_mb=16384, disk_gb=100))
    inv.add_host(Host("h2", 1, 3, "10.0.0.2", 6200))
    return inv


def test_add_drive_allocates_increasing_ids_never_reused() -> None:
    inv = _inv()
    a = inv.add_drive("h1", "sda", 100.0)
    b = inv.add_drive("h1", "sdb", 100.0, meta="ssd")
    assert (a.id, b.id) == (0, 1)
    assert b == Drive(1, "h1", "sdb", 100.0, "ssd")
    inv.remove_drive(b.id)
    c = inv.add_drive("h1", "sdb", 50.0)
    assert c.id == 2
    assert set(inv.drives) == {0, 2}


def test_set_weight_and_history() -> None:
    inv = _inv()
    d = inv.add_drive("h2", "sda", 100.0, now=7.0)
    inv.set_weight(d.id, 0.0, now=8.0)
    assert inv.drive(d.id).weight == 0.0
    actions = [(c.action, c.time) for c in inv.history]
    assert actions == [("add_host", 42.0), ("add_host", 42.0), ("add_drive", 7.0), ("set_weight", 8.0)]
    assert inv.history[-1].details == {"id": d.id, "old": 100.0, "new": 0.0}


@pytest.mark.parametrize(
    "call",
    [
        lambda inv: inv.add_drive("nohost", "sda", 1.0),
        lambda inv: inv.add_drive("h1", "sda", -1.0),
        lambda inv: inv.add_drive("h1", "sda", float("nan")),
        lambda inv: inv.add_drive("h1", "sda", "heavy"),
        lambda inv: inv.add_drive("h1", "", 1.0),
        lambda inv: inv.add_drive("h1", "x/y", 1.0),
        lambda inv: inv.remove_drive(99),
        lambda inv: inv.set_weight(99, 1.0),
        lambda inv: inv.set_weight(0, -5),
        lambda inv: inv.add_host(Host("h1", 1, 1, "10.0.0.9", 6200)),
        lambda inv: inv.add_host(Host("h9", -1, 1, "10.0.0.9", 6200)),
        lambda inv: inv.add_host(Host("h9", 1, 1, "10.0.0.9", 70000)),
        lambda inv: inv.remove_host("h1"),
    ],
)
def test_bad_changes_raise_and_change_nothing(call) -> None:
    inv = _inv()
    inv.add_drive("h1", "sda", 1.0)
    before = inv.to_dict()
    with pytest.raises(InventoryError):
        call(inv)
    assert inv.to_dict() == before


def test_duplicate_device_on_same_host_refused_but_ok_elsewhere() -> None:
    inv = _inv()
    inv.add_drive("h1", "sda", 1.0)
    with pytest.raises(InventoryError, match="already exists"):
        inv.add_drive("h1", "sda", 2.0)
    inv.add_drive("h2", "sda", 2.0)


def test_remove_host_after_its_drives() -> None:
    inv = _inv()
    d = inv.add_drive("h1", "sda", 1.0)
    inv.remove_drive(d.id)
    inv.remove_host("h1")
    assert "h1" not in inv.hosts


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove", "weight"]),
                          st.integers(0, 5), st.floats(0, 1e6)), max_size=30))
def test_json_round_trip_is_exact(ops) -> None:
    inv = _inv()
    for op, k, w in ops:
        ids = sorted(inv.drives)
        if op == "add":
            try:
                inv.add_drive(["h1", "h2"][k % 2], f"sd{k}", w)
            except InventoryError:
                pass
        elif ids:
            target = ids[k % len(ids)]
            if op == "remove":
                inv.remove_drive(target)
            else:
                inv.set_weight(target, w)
    blob = json.dumps(inv.to_dict())
    back = Inventory.from_dict(json.loads(blob))
    assert back == inv
    assert back.next_drive_id == inv.next_drive_id
    # ids stay burnt after a round trip
    if inv.hosts:
        new = back.add_drive("h2", "fresh-device", 1.0)
        assert new.id == inv.next_drive_id


def test_from_dict_refuses_reused_ids() -> None:
    inv = _inv()
    inv.add_drive("h1", "sda", 1.0)
    data = inv.to_dict()
    data["next_drive_id"] = 0
    with pytest.raises(InventoryError):
        Inventory.from_dict(data)
