"""The hash-directory lock of the real drive layer against concurrent removal.

Contract (``DiskDrives.lock_dir``): while the lock is held, the path names
the directory that was locked, even when a rehash removes emptied hash
directories (under the same lock) and their suffix parents at the same time.
Before this held, a PUT whose directory a concurrent auditor pass removed
answered 500 (CI: test_auditor_task_in_the_server_and_tombstone_reclaim).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage_node.drive import DiskDrives
from tests.support.rehash import concurrent_rehash


def test_writer_keeps_its_directory_while_a_rehash_removes_empty_ones(tmp_path: Path) -> None:
    drives = DiskDrives()
    part_dir = tmp_path / "objects" / "5"
    hash_dir = part_dir / "abc" / ("0" * 29 + "abc")
    with concurrent_rehash(hash_dir, part_dir):
        for i in range(3000):
            with drives.lock_dir(hash_dir):  # what a PUT's commit does
                f = hash_dir / f"{i}.data"
                f.write_bytes(b"x")  # raises if the directory vanished under the lock
                assert f.read_bytes() == b"x"
                f.unlink()


def test_lock_dir_creates_missing_parents(tmp_path: Path) -> None:
    drives = DiskDrives()
    d = tmp_path / "objects" / "1" / "fff" / "x"
    with drives.lock_dir(d):
        assert d.is_dir()


# -- direct (O_DIRECT) temp files ------------------------------------------------

def _takes_o_direct(where: Path) -> bool:
    try:
        fd = os.open(where / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    except OSError:
        return False
    os.close(fd)
    os.unlink(where / "probe")
    return True


@pytest.mark.parametrize("sizes", [[0], [1], [4095, 1], [1 << 20], [(1 << 20) + 1, 3, 70000], [5000] * 700])
def test_direct_temp_file_holds_exactly_what_was_written(tmp_path: Path, sizes: list[int]) -> None:
    """Bytes written in any pieces through the aligned buffer come back
    exactly, with the exact size (the padding of the last block truncated)."""
    import fcntl as _fcntl

    drives = DiskDrives()
    pieces = [os.urandom(n) for n in sizes]
    tmp = drives.open_temp(tmp_path, direct=True)
    flags = _fcntl.fcntl(tmp.fd, _fcntl.F_GETFL)  # type: ignore[attr-defined]
    assert bool(flags & os.O_DIRECT) == _takes_o_direct(tmp_path)  # direct wherever the file system allows
    for p in pieces:
        tmp.write(p)
    tmp.fsync()
    tmp.commit(tmp_path / "objects" / "x", "1.data")
    assert (tmp_path / "objects" / "x" / "1.data").read_bytes() == b"".join(pieces)
    assert os.listdir(tmp_path / "tmp") == []


def test_direct_temp_file_abort_leaves_nothing_and_buffers_are_reused(tmp_path: Path) -> None:
    drives = DiskDrives()
    first = drives.open_temp(tmp_path, direct=True)
    first.write(b"x" * 10)
    buf = first._buf  # type: ignore[attr-defined]
    first.abort()
    assert os.listdir(tmp_path / "tmp") == []
    second = drives.open_temp(tmp_path, direct=True)
    assert second._buf is buf  # type: ignore[attr-defined]
    second.abort()


def test_direct_temp_file_falls_back_to_buffered_where_o_direct_is_refused(tmp_path: Path, monkeypatch) -> None:
    """A file system without O_DIRECT (EINVAL at open, as tmpfs on older
    kernels) gets buffered writes, same bytes, and the buffer goes back."""
    import errno

    from storage_node import drive as drive_mod

    real_open = os.open

    def no_direct(path, flags, *args):  # type: ignore[no-untyped-def]
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(drive_mod.os, "open", no_direct)
    spare = drive_mod._BUFFERS.idle
    tmp = DiskDrives().open_temp(tmp_path, direct=True)
    assert tmp._buf is None  # type: ignore[attr-defined]
    body = os.urandom(3 * (1 << 20) + 17)
    tmp.write(body)
    tmp.fsync()
    tmp.commit(tmp_path / "d", "1.data")
    assert (tmp_path / "d" / "1.data").read_bytes() == body
    assert drive_mod._BUFFERS.idle >= max(spare, 1)
