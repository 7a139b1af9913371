"""Cluster builder file: round trip, atomic save, refusal of corrupt files, ring data."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ring.builder import RingBuilder
from ring.builderfile import RING_NAMES, BuilderFileError, ClusterBuilder
from ring.inventory import Host, Inventory
from ring.ringfile import RingData, read_ring, write_ring


def _cluster(part_power: int = 6) -> ClusterBuilder:
    inv = Inventory(clock=lambda: 1.0)
    for z in range(4):
        inv.add_host(Host(f"h{z}", 1, z, f"10.0.0.{z}", 6200 + z, vcpus=4))
        for j in range(2):
            inv.add_drive(f"h{z}", f"sd{j}", 100.0 + j, meta=f"m{z}{j}")
    cb = ClusterBuilder.create(part_power, 3, 1, inventory=inv)
    cb.add_ring("account", RingBuilder(part_power - 1, 2, 0, seed=4))
    return cb


def test_round_trip_keeps_everything(tmp_path) -> None:
    cb = _cluster()
    for name in RING_NAMES:
        cb.rebalance(name, now=100.0)
    cb.inventory.remove_drive(3, now=200.0)
    cb.rebalance("object", now=4000.0)
    path = tmp_path / "cluster.builder"
    cb.save(path)
    back = ClusterBuilder.load(path)
    assert back.inventory == cb.inventory
    assert back.inventory.history[-1].action == "rebalance"
    assert set(back.rings) == set(RING_NAMES)
    for name, b in cb.rings.items():
        c = back.rings[name]
        assert c.params() == b.params()
        np.testing.assert_array_equal(c.replica2part2dev, b.replica2part2dev)
        np.testing.assert_array_equal(c.last_moved, b.last_moved)
        assert c.replica2part2dev.flags.writeable
    # the loaded builder keeps working: same next rebalance as the original
    cb.inventory.add_drive("h0", "sd9", 150.0, now=5000.0)
    back.inventory.add_drive("h0", "sd9", 150.0, now=5000.0)
    r1 = cb.rebalance("object", now=9000.0)
    r2 = back.rebalance("object", now=9000.0)
    assert r1.moved == r2.moved
    np.testing.assert_array_equal(cb.rings["object"].replica2part2dev,
                                  back.rings["object"].replica2part2dev)


def test_never_rebalanced_rings_round_trip(tmp_path) -> None:
    cb = _cluster()
    cb.save(tmp_path / "b")
    back = ClusterBuilder.load(tmp_path / "b")
    assert not back.rings["object"].ever_rebalanced()
    assert (back.rings["object"].replica2part2dev == -1).all()
    assert np.isneginf(back.rings["object"].last_moved).all()


@pytest.mark.parametrize("where", ["magic", "version", "meta", "array", "checksum", "truncate"])
def test_corrupt_file_is_refused(tmp_path, where) -> None:
    cb = _cluster()
    cb.rebalance("object", now=0.0)
    path = tmp_path / "b"
    cb.save(path)
    blob = bytearray(path.read_bytes())
    if where == "magic":
        blob[0] ^= 1
    elif where == "version":
        blob[8] ^= 7
    elif where == "meta":
        blob[40] ^= 1
    elif where == "array":
        blob[-100] ^= 1
    elif where == "checksum":
        blob[-1] ^= 1
    else:
        del blob[len(blob) // 2:]
    path.write_bytes(bytes(blob))
    with pytest.raises(BuilderFileError):
        ClusterBuilder.load(path)


def test_missing_file_is_a_builder_error(tmp_path) -> None:
    with pytest.raises(BuilderFileError, match="cannot read"):
        ClusterBuilder.load(tmp_path / "nope")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch) -> None:
    cb = _cluster()
    path = tmp_path / "b"
    cb.save(path)
    before = path.read_bytes()
    cb.rebalance("object", now=0.0)

    def boom(*_a, **_k):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        cb.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["b"]
    cb.save(path)
    assert ClusterBuilder.load(path).rings["object"].ever_rebalanced()


def test_bad_ring_names() -> None:
    cb = _cluster()
    with pytest.raises(BuilderFileError):
        cb.add_ring("objects", RingBuilder(4, 3, 1))
    with pytest.raises(BuilderFileError):
        cb.ring("nope")
    cb.add_ring("object-1", RingBuilder(4, 3, 1))


def test_ring_data_feeds_the_ring_file(tmp_path) -> None:
    cb = _cluster()
    with pytest.raises(BuilderFileError, match="never rebalanced"):
        cb.ring_data("object")
    cb.inventory.remove_drive(7)
    cb.rebalance("object", now=123.0)
    data = cb.ring_data("object")
    assert isinstance(data, RingData)
    assert data.part_power == 6 and data.replicas == 3 and data.created_at == 123.0
    assert len(data.devices) == cb.inventory.next_drive_id
    assert data.devices[7] is None
    d0 = data.devices[0]
    assert d0 is not None and (d0.host, d0.zone, d0.port, d0.device, d0.weight) == ("h0", 0, 6200, "sd0", 100.0)
    data.validate()
    write_ring(tmp_path / "object.ring", data)
    back = read_ring(tmp_path / "object.ring")
    assert back.same_as(data)


def test_loads_a_part_power_20_ring_quickly(tmp_path) -> None:
    import time

    cb = _cluster()
    big = RingBuilder(20, 3, 1)
    big.replica2part2dev[:] = np.arange(3, dtype=np.int32)[:, None]
    cb.add_ring("object", big)
    cb.save(tmp_path / "big")
    t = time.process_time()  # CPU time: robust on a busy machine
    back = ClusterBuilder.load(tmp_path / "big")
    assert time.process_time() - t < 1.0
    np.testing.assert_array_equal(back.rings["object"].replica2part2dev, big.replica2part2dev)
