"""The per-drive LMDB index, group commit, the async_pending queue, and the
drive-layer conformance suite (disk and in-memory)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from common.bodyhash import CHUNK_SIZE
from common.threadpool import ThreadPool
from common.timestamp import Timestamp
from storage_node import async_pending
from storage_node.diskfile import ObjectLocation, ObjectReader, ObjectWriter, settle, write_small
from storage_node.drive import DiskDrives, DriveUnavailable, MemoryDrives
from storage_node.index import DriveIndex, GroupCommitter, forget_env, open_env
from storage_node.integrity import CorruptData
from storage_node.object_core import ObjectRecord

T = Timestamp.parse
H1 = "0" * 29 + "abc"
H2 = "1" * 29 + "abc"
H3 = "2" * 29 + "def"


@pytest.fixture
def env(tmp_path):
    e = open_env(tmp_path)
    yield e
    forget_env(tmp_path)


def rec(data=None, tomb=None, meta=None, files=None):
    fl = files if files is not None else tuple(f"{t}.x" for t in (data, tomb, meta) if t)
    return ObjectRecord(name="/a/c/o", data_ts=T(data) if data else None, tomb_ts=T(tomb) if tomb else None,
                        meta_ts=T(meta) if meta else None, size=1, etag="e", files=fl)


def test_rows_and_precedence(env):
    idx = DriveIndex(env)
    idx.apply([idx.op_put_row(7, H1, rec(data="5"))])
    assert idx.get(7, H1).data_ts == T("5")
    idx.apply([idx.op_put_row(7, H1, rec(data="4"))])  # older row loses
    assert idx.get(7, H1).data_ts == T("5")
    idx.apply([idx.op_put_row(7, H1, rec(tomb="6"))])
    assert idx.get(7, H1).tomb_ts == T("6") and not idx.get(7, H1).exists
    idx.apply([idx.op_put_row(7, H1, rec(data="1"), force=True)])
    assert idx.get(7, H1).data_ts == T("1")
    idx.apply([idx.op_put_row(7, H1, rec(data="9", files=()))])  # no files left: row goes
    assert idx.get(7, H1) is None


def test_suffix_hashes_cached_and_invalidated_on_every_write(env):
    idx = DriveIndex(env)
    idx.apply([idx.op_put_row(3, H1, rec(data="5")), idx.op_put_row(3, H2, rec(data="5")),
               idx.op_put_row(3, H3, rec(data="5")), idx.op_put_row(4, H1, rec(data="5"))])
    first = idx.suffix_hashes(3)
    assert set(first) == {"abc", "def"}
    assert idx.suffix_hashes(3) == first  # cached
    idx.apply([idx.op_put_row(3, H2, rec(data="6"))])
    second = idx.suffix_hashes(3)
    assert second["abc"] != first["abc"] and second["def"] == first["def"]
    idx.apply([idx.op_delete_row(3, H3)])
    assert set(idx.suffix_hashes(3)) == {"abc"}
    assert idx.partitions() == [3, 4]
    assert [h for h, _ in idx.rows(3)] == [H1, H2]


def test_delete_row_if_respects_a_newer_commit(env):
    idx = DriveIndex(env)
    idx.apply([idx.op_put_row(1, H1, rec(tomb="5"))])
    idx.apply([idx.op_put_row(1, H1, rec(data="7"))])
    idx.apply([idx.op_delete_row_if(1, H1, rec(tomb="5").files)])
    assert idx.get(1, H1).data_ts == T("7")


async def test_group_commit_batches_concurrent_writers(env):
    idx = DriveIndex(env)
    gc = GroupCommitter(env, ThreadPool(4), enabled=True)
    hashes = [f"{i:032x}" for i in range(40)]
    async with trio.open_nursery() as n:
        for h in hashes:
            n.start_soon(gc.commit, [idx.op_put_row(2, h, rec(data="5"))])
    assert gc.ops == 40 and gc.batches < 40
    assert all(idx.get(2, h) for h in hashes)
    off = GroupCommitter(env, ThreadPool(4), enabled=False)
    async with trio.open_nursery() as n:
        for h in hashes[:10]:
            n.start_soon(off.commit, [idx.op_put_row(2, h, rec(data="6"))])
    assert off.batches == 10


async def test_group_commit_error_reaches_every_writer_in_the_batch(env):
    gc = GroupCommitter(env, ThreadPool(1))

    def boom(txn):
        raise RuntimeError("bad op")

    errors = []

    async def one(ops):
        try:
            await gc.commit(ops)
        except RuntimeError as exc:
            errors.append(exc)

    async with trio.open_nursery() as n:
        n.start_soon(one, [boom])
        n.start_soon(one, [boom])
    assert len(errors) == 2


def test_async_pending_keeps_the_newest_update(env):
    idx = DriveIndex(env)
    hdrs = {"x-container-host": "127.0.0.1:1", "x-container-device": "d1", "x-container-partition": "3"}
    new = async_pending.build_updates("PUT", hdrs, "/a/c/o", H1, T("6"), 1, "t", "e")
    old = async_pending.build_updates("DELETE", hdrs, "/a/c/o", H1, T("5"))
    idx.apply([async_pending.op_enqueue(env, new[0]), async_pending.op_enqueue(env, old[0])])
    queued = async_pending.pending_updates(env)
    assert len(queued) == 1 and queued[0].method == "PUT" and queued[0].path == "/d1/3/a/c/o"
    idx.apply([async_pending.op_remove(env, queued[0].key, T("5"))])  # not the queued one
    assert async_pending.pending_updates(env)
    idx.apply([async_pending.op_remove(env, queued[0].key, T("6"))])
    assert async_pending.pending_updates(env) == []
    assert isinstance(async_pending.targets({"x-container-host": "h:1,h:2", "x-container-device": "d1",
                                             "x-container-partition": "1"}), str)


def test_async_pending_merges_a_post_row_with_a_put_row(env):
    """A queued POST row (data 5, type at 7) and a queued PUT row (data 6)
    merge as container rows do: data from the PUT, type from the POST; the
    updater's remove only takes the merged row it sent."""
    idx = DriveIndex(env)
    hdrs = {"x-container-host": "127.0.0.1:1", "x-container-device": "d1", "x-container-partition": "3"}
    post = async_pending.build_updates("PUT", hdrs, "/a/c/o", H1, T("5"), 1, "image/png", "e5", T("7"))
    put = async_pending.build_updates("PUT", hdrs, "/a/c/o", H1, T("6"), 2, "text/plain", "e6")
    for order in ((post, put), (put, post)):
        idx.apply([async_pending.op_enqueue(env, u[0]) for u in order])
        (queued,) = async_pending.pending_updates(env)
        h = queued.headers
        assert (h["X-Timestamp"], h["X-Size"], h["X-Etag"]) == (T("6").internal, "2", "e6")
        assert (h["X-Content-Type"], queued.ctype_timestamp) == ("image/png", T("7"))
        idx.apply([async_pending.op_remove(env, queued.key, T("6"), T("6"))])  # not the one sent
        assert async_pending.pending_updates(env)
        idx.apply([async_pending.op_remove(env, queued.key, T("6"), T("7"))])
        assert async_pending.pending_updates(env) == []


# -- drive layer conformance (both implementations) ------------------------------------------

@pytest.fixture(params=["disk", "memory"])
def drive(request, tmp_path):
    root = tmp_path / "d1"
    if request.param == "disk":
        root.mkdir()
        return DiskDrives(), root
    mem = MemoryDrives()
    mem.mkdir(root)
    return mem, root


def test_drive_write_settle_read(drive):
    drives, root = drive
    drives.check(root, False)
    loc = ObjectLocation(root, 5, H1, "/a/c/o")
    w = ObjectWriter(drives, root)
    body = b"x" * (CHUNK_SIZE + 10)
    w.write(body)
    w.finish("/a/c/o", {"content-type": "text/plain"}, None)
    r = w.commit(loc, T("5"))
    assert r.exists and r.size == len(body) and r.files == ("0000000005.00000.data",)
    assert drives.listdir(root / "tmp") == []
    reader = ObjectReader(drives, loc.dir / r.data_file, r)
    assert reader.chunk(0) + reader.chunk(1) == body
    assert reader.read_range(CHUNK_SIZE - 2, CHUNK_SIZE + 1) == b"xx"
    reader.close()
    t = write_small(drives, loc, T("6"), ".ts", {"name": "/a/c/o"})
    assert t.tomb_ts == T("6") and drives.listdir(loc.dir) == ["0000000006.00000.ts"]
    assert settle(drives, ObjectLocation(root, 5, H1, "")).name == "/a/c/o"


def test_drive_etag_mismatch_leaves_nothing(drive):
    drives, root = drive
    w = ObjectWriter(drives, root)
    w.write(b"abc")
    with pytest.raises(Exception) as e:
        w.finish("/a/c/o", {}, "0" * 32)
    assert getattr(e.value, "status", None) == 422
    assert drives.listdir(root / "tmp") == []


def test_drive_detects_a_flipped_byte(drive):
    drives, root = drive
    loc = ObjectLocation(root, 5, H1, "/a/c/o")
    w = ObjectWriter(drives, root)
    w.write(b"hello world")
    w.finish("/a/c/o", {}, None)
    r = w.commit(loc, T("5"))
    path = loc.dir / r.data_file
    data = bytearray(drives.read_bytes(path))
    data[3] ^= 1
    if isinstance(drives, DiskDrives):
        path.write_bytes(bytes(data))
    else:
        drives.files[path] = bytes(data)
    reader = ObjectReader(drives, path, r)
    with pytest.raises(CorruptData):
        reader.chunk(0)
    reader.close()


def test_drive_missing_is_unavailable(tmp_path):
    with pytest.raises(DriveUnavailable):
        DiskDrives().check(tmp_path / "nope", False)
    with pytest.raises(DriveUnavailable):
        DiskDrives().check(tmp_path, True)  # not a mount point
    with pytest.raises(DriveUnavailable):
        MemoryDrives().check(Path("/x"), False)


def test_auditor_style_full_check_catches_a_corrupt_trailer(drive):
    drives, root = drive
    loc = ObjectLocation(root, 5, H1, "/a/c/o")
    w = ObjectWriter(drives, root)
    w.write(b"hello world")
    w.finish("/a/c/o", {}, None)
    r = w.commit(loc, T("5"))
    path = loc.dir / r.data_file
    data = bytearray(drives.read_bytes(path))
    data[-30] ^= 0x20  # inside the JSON metadata, not the body or digests
    if isinstance(drives, DiskDrives):
        path.write_bytes(bytes(data))
    else:
        drives.files[path] = bytes(data)
    ObjectReader(drives, path, r).close()  # a GET only needs the digests
    with pytest.raises(CorruptData):
        ObjectReader(drives, path, r, full_check=True)


# -- order independence: the same writes in any order settle the same way (invariant 2) ---------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_OPS = st.lists(st.tuples(st.sampled_from(["PUT", "DELETE", "POST"]), st.integers(1, 40)),
                min_size=1, max_size=8, unique_by=lambda op: op[1])


def _apply(mem, root, op, t):
    loc = ObjectLocation(root, 1, H1, "/a/c/o")
    if op == "PUT":
        w = ObjectWriter(mem, root)
        w.write(f"body {t}".encode())
        w.finish("/a/c/o", {"content-type": "text/plain", "x-object-meta-v": str(t)}, None)
        return w.commit(loc, T(str(t)))
    if op == "DELETE":
        return write_small(mem, loc, T(str(t)), ".ts", {"name": "/a/c/o"})
    return write_small(mem, loc, T(str(t)), ".meta", {"headers": {"x-object-meta-p": str(t)}})


@settings(max_examples=60, deadline=None)
@given(_OPS, st.randoms(use_true_random=False))
def test_any_arrival_order_settles_to_the_same_state(ops, rnd):
    # POSTs come after the writes they target: the server 404s a POST that
    # finds no data, so a POST overtaking every PUT is not a state to settle
    writes = [o for o in ops if o[0] != "POST"]
    posts = [o for o in ops if o[0] == "POST"]
    results = []
    for order in (sorted(writes, key=lambda o: o[1]) + sorted(posts, key=lambda o: o[1]),
                  rnd.sample(writes, len(writes)) + rnd.sample(posts, len(posts))):
        mem = MemoryDrives()
        root = Path("/m/d1")
        mem.mkdir(root)
        rec = None
        for op, t in order:
            rec = _apply(mem, root, op, t)
        loc = ObjectLocation(root, 1, H1, "")
        results.append((settle(mem, loc), sorted(mem.listdir(loc.dir))))
        assert rec is not None
    (a, files_a), (b, files_b) = results
    assert files_a == files_b and a.files == b.files
    assert (a.data_ts, a.tomb_ts, a.meta_ts, a.headers) == (b.data_ts, b.tomb_ts, b.meta_ts, b.headers)
    newest = max(ops, key=lambda o: o[1] if o[0] != "POST" else -1)
    if newest[0] == "PUT":
        assert a.data_ts == T(str(newest[1]))
    elif newest[0] == "DELETE":
        assert a.tomb_ts == T(str(newest[1])) and not a.exists
