"""The durable-write kernels (``_native/durable.pyx``) and their pure twins
(``storage_node/_durable_twins.py``): same files, same listings, same locks,
same errors; and the temp files of the real drive layer that use them."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import ModuleType

import pytest

from storage_node import _durable_twins
from storage_node._fault_drive import FaultyDiskDrives
from storage_node.drive import DiskDrives
from tests.support.rehash import concurrent_rehash

native = pytest.importorskip("_native.durable")
KERNELS = {"native": native, "twins": _durable_twins}


@pytest.fixture(params=sorted(KERNELS))
def k(request: pytest.FixtureRequest) -> ModuleType:
    return KERNELS[request.param]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _locked(path: Path, flags: int) -> bool:
    """Whether a new open file description of ``path`` is refused ``flags``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, flags | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_create_synced_writes_every_part_and_refuses_an_existing_file(k: ModuleType, tmp_path: Path) -> None:
    p = tmp_path / "a.tmp"
    k.create_synced(p, [b"head", bytes(70000), b"", bytearray(b"tail"), memoryview(b"!")])
    assert p.read_bytes() == b"head" + bytes(70000) + b"tail!"
    assert oct(p.stat().st_mode & 0o777) == oct(0o644 & ~_umask())
    with pytest.raises(FileExistsError):
        k.create_synced(p, [b"other"])
    assert p.read_bytes() == b"head" + bytes(70000) + b"tail!"  # untouched
    with pytest.raises(FileNotFoundError):
        k.create_synced(tmp_path / "missing" / "b.tmp", [b"x"])
    assert sorted(os.listdir(tmp_path)) == ["a.tmp"]


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_commit_locked_moves_lists_and_holds_both_locks_until_closed(k: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "d1"
    (root / "tmp").mkdir(parents=True)
    tmp = root / "tmp" / "x.tmp"
    tmp.write_bytes(b"body")
    dest = root / "objects" / "7" / "abc" / ("0" * 29 + "abc")  # nothing of it exists yet
    lock = root / "locks" / "7.lock"  # nor this
    before = _fds()
    lock_fd, dir_fd, names = k.commit_locked(lock, dest, tmp, "1.data")
    try:
        assert names == ["1.data"]
        assert (dest / "1.data").read_bytes() == b"body" and not tmp.exists()
        assert _locked(lock, fcntl.LOCK_EX) and not _locked(lock, fcntl.LOCK_SH)  # held shared
        assert _locked(dest, fcntl.LOCK_SH)  # held exclusive
        assert os.path.samestat(os.fstat(dir_fd), os.stat(dest))
    finally:
        k.close_fds(dir_fd, lock_fd)
    assert _fds() == before
    assert not _locked(lock, fcntl.LOCK_EX) and not _locked(dest, fcntl.LOCK_EX)
    # A second file into the same, now existing, directory: both listed.
    (root / "tmp" / "y.tmp").write_bytes(b"newer")
    lock_fd, dir_fd, names = k.commit_locked(lock, dest, root / "tmp" / "y.tmp", "2.data")
    k.close_fds(dir_fd, lock_fd)
    assert sorted(names) == ["1.data", "2.data"]


def test_commit_locked_failure_releases_the_locks_and_leaks_no_descriptor(k: ModuleType, tmp_path: Path) -> None:
    root = tmp_path / "d1"
    dest = root / "objects" / "1" / "fff" / "h"
    lock = root / "locks" / "1.lock"
    before = _fds()
    with pytest.raises(FileNotFoundError) as info:
        k.commit_locked(lock, dest, root / "tmp" / "gone.tmp", "1.data")
    assert info.value.filename == str(root / "tmp" / "gone.tmp")
    assert _fds() == before
    assert not _locked(lock, fcntl.LOCK_EX) and not _locked(dest, fcntl.LOCK_EX)
    assert os.listdir(dest) == []  # the directory was made (durably), nothing moved in


def test_commit_locked_keeps_its_directory_while_a_rehash_removes_empty_ones(
        k: ModuleType, tmp_path: Path) -> None:
    """As ``DiskDrives.lock_dir`` (tests/unit/test_drive_locks.py): a rehash
    removing the emptied hash directory and its suffix under the same lock
    never takes the directory a commit holds."""
    root = tmp_path / "d1"
    (root / "tmp").mkdir(parents=True)
    part_dir = root / "objects" / "5"
    hash_dir = part_dir / "abc" / ("0" * 29 + "abc")
    with concurrent_rehash(hash_dir, part_dir):
        for i in range(1500):
            tmp = root / "tmp" / f"{i}.tmp"
            tmp.write_bytes(b"x")
            lock_fd, dir_fd, names = k.commit_locked(root / "locks" / "5.lock", hash_dir, tmp, f"{i}.data")
            try:
                assert names == [f"{i}.data"]
                assert (hash_dir / f"{i}.data").read_bytes() == b"x"  # the directory we hold is linked there
                (hash_dir / f"{i}.data").unlink()
            finally:
                k.close_fds(dir_fd, lock_fd)


def test_small_temp_files_are_created_at_fsync_in_one_step(tmp_path: Path) -> None:
    root = tmp_path / "d1"
    root.mkdir()
    t = DiskDrives().open_temp(root)  # no <root>/tmp yet: made on the way
    t.write(b"a" * 100)
    t.write(memoryview(b"b" * 100))
    assert not (root / "tmp").exists() or os.listdir(root / "tmp") == []  # held until fsync
    t.fsync()
    [name] = os.listdir(root / "tmp")
    assert name.startswith(f"{os.getpid()}-")  # clean_temp reads the writer's pid there
    assert (root / "tmp" / name).read_bytes() == b"a" * 100 + b"b" * 100
    t.commit(root / "objects" / "1", "1.data")
    assert (root / "objects" / "1" / "1.data").read_bytes() == b"a" * 100 + b"b" * 100
    # An aborted deferred file leaves nothing.
    t2 = DiskDrives().open_temp(root)
    t2.write(b"x")
    t2.abort()
    assert os.listdir(root / "tmp") == []


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A drive root with its ``tmp`` directory."""
    (tmp_path / "d1" / "tmp").mkdir(parents=True)
    return tmp_path / "d1"


def test_a_temp_file_outgrowing_the_deferral_is_written_as_it_comes(root: Path) -> None:
    t = DiskDrives().open_temp(root)
    t.write(b"a" * 60000)
    assert os.listdir(root / "tmp") == []
    t.write(b"b" * 10000)  # past DEFER_MAX: created and written
    [name] = os.listdir(root / "tmp")
    t.write(b"c")
    t.fsync()
    assert (root / "tmp" / name).read_bytes() == b"a" * 60000 + b"b" * 10000 + b"c"
    t.abort()
    assert os.listdir(root / "tmp") == []


def test_fault_injecting_temp_files_exist_from_the_start(root: Path) -> None:
    """FAULTS 3 crashes before fsync must leave a temp file behind."""
    t = FaultyDiskDrives().open_temp(root)
    t.write(b"x")
    assert len(os.listdir(root / "tmp")) == 1
    t.abort()
