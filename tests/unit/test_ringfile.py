"""Ring file format: round trip, atomic write, and every refusal is one line."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from ring.ringfile import (
    FORMAT_VERSION,
    MAGIC,
    RingData,
    RingDevice,
    RingFileError,
    read_ring,
    read_ring_with_checksum,
    write_ring,
)


def make_data(part_power: int = 6, replicas: int = 3, ndev: int = 8, hole: bool = True) -> RingData:
    devices: list[RingDevice | None] = [
        RingDevice(i, f"host{i // 2}", 1 + i % 2, i % 4, f"10.0.0.{i // 2}", 6200 + i % 2, f"sd{chr(97 + i)}", 100.0 + i)
        for i in range(ndev)
    ]
    if hole:
        devices[3] = None
    live = [d.id for d in devices if d is not None]
    rng = np.random.default_rng(1)
    table = rng.choice(live, size=(replicas, 1 << part_power)).astype(np.int32)
    return RingData(part_power, replicas, table, tuple(devices), created_at=1234.5)


def test_round_trip(tmp_path: Path) -> None:
    data = make_data()
    path = tmp_path / "object.ring"
    checksum = write_ring(path, data)
    loaded, checksum2 = read_ring_with_checksum(path)
    assert checksum == checksum2 and len(checksum) == 32
    assert loaded.same_as(data)
    assert loaded.devices[3] is None
    assert loaded.replica2part2dev.dtype == np.int32
    assert loaded.replica2part2dev.flags.writeable  # a copy, not a view of the file bytes
    assert sorted(os.listdir(tmp_path)) == ["object.ring"]  # no temp file left behind


def test_same_as_sees_table_changes() -> None:
    a = make_data()
    table = a.replica2part2dev.copy()
    table[0, 0] = 0 if table[0, 0] != 0 else 1
    b = RingData(a.part_power, a.replicas, table, a.devices, a.created_at)
    assert a == b  # dataclass equality skips the array...
    assert not a.same_as(b)  # ...same_as does not


def test_no_device_marker_allowed(tmp_path: Path) -> None:
    data = make_data(replicas=2)
    data.replica2part2dev[1, :5] = -1
    write_ring(tmp_path / "r", data)
    assert (read_ring(tmp_path / "r").replica2part2dev[1, :5] == -1).all()


def test_zero_part_power(tmp_path: Path) -> None:
    data = make_data(part_power=0, replicas=1)
    write_ring(tmp_path / "r", data)
    assert read_ring(tmp_path / "r").replica2part2dev.shape == (1, 1)


def _assert_one_line(exc: pytest.ExceptionInfo[RingFileError], *words: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    for word in words:
        assert word in msg, msg


def test_refuses_bad_checksum(tmp_path: Path) -> None:
    path = tmp_path / "r"
    write_ring(path, make_data())
    blob = bytearray(path.read_bytes())
    blob[-40] ^= 0x01  # inside the replica table
    path.write_bytes(bytes(blob))
    with pytest.raises(RingFileError) as exc:
        read_ring(path)
    _assert_one_line(exc, "checksum")


def test_refuses_bad_magic_and_version(tmp_path: Path) -> None:
    path = tmp_path / "r"
    write_ring(path, make_data())
    blob = path.read_bytes()
    path.write_bytes(b"XXXXXXXX" + blob[8:])
    with pytest.raises(RingFileError) as exc:
        read_ring(path)
    _assert_one_line(exc, "magic")
    path.write_bytes(MAGIC + struct.pack("<H", FORMAT_VERSION + 1) + blob[10:])
    with pytest.raises(RingFileError) as exc:
        read_ring(path)
    _assert_one_line(exc, "version")


def test_refuses_truncated_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "r"
    write_ring(path, make_data())
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(RingFileError) as exc:
        read_ring(path)
    _assert_one_line(exc, "checksum")
    path.write_bytes(b"tiny")
    with pytest.raises(RingFileError):
        read_ring(path)
    with pytest.raises(RingFileError) as exc:
        read_ring(tmp_path / "absent")
    _assert_one_line(exc, "cannot read")


@pytest.mark.parametrize(
    "mutate, word",
    [
        (lambda t: t.__setitem__((0, 0), 3), "removed device"),
        (lambda t: t.__setitem__((0, 0), 99), "outside"),
        (lambda t: t.__setitem__((0, 0), -2), "outside"),
    ],
)
def test_write_refuses_inconsistent_ring_and_keeps_old_file(tmp_path: Path, mutate, word: str) -> None:
    path = tmp_path / "r"
    good = make_data()
    write_ring(path, good)
    before = path.read_bytes()
    bad = make_data()
    mutate(bad.replica2part2dev)
    with pytest.raises(RingFileError) as exc:
        write_ring(path, bad)
    _assert_one_line(exc, word)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["r"]


def test_write_refuses_wrong_shape() -> None:
    data = make_data()
    bad = RingData(data.part_power + 1, data.replicas, data.replica2part2dev, data.devices)
    with pytest.raises(RingFileError, match="shape"):
        bad.validate()
