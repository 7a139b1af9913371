"""The LMDB listing databases: range scans vs the in-memory model, incremental
counts and hash (C1), row sync (S1), long names (K1), group-committed writes."""

from __future__ import annotations

import itertools

import lmdb
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.threadpool import ThreadPool
from common.timestamp import Timestamp
from storage_node.index import GroupCommitter
from storage_node.listing_core import ListingQuery, list_entries, scan_sorted
from storage_node.listing_db import DbRef, ListingDbs, NotFound, container_row_of
from storage_node.listing_store import ListingStore
from storage_node.rows_core import (
    ContainerRow,
    DbInfo,
    ObjectRow,
    RowError,
    apply_delete,
    merge_object_rows,
    row_digest,
)

REF = DbRef("container", "AUTH_a", "c")
_SEQ = itertools.count()


@pytest.fixture
def dbs(tmp_path):
    env = lmdb.open(str(tmp_path / "env"), map_size=1 << 28, max_dbs=16)
    yield ListingDbs(env)
    env.close()


def make_db(dbs, ref=REF, part=7):
    with dbs.env.begin(write=True) as txn:
        return dbs.create(txn, ref, part, DbInfo(Timestamp(1), Timestamp(1)))


def put_rows(dbs, rows, ref=REF):
    with dbs.env.begin(write=True) as txn:
        st = dbs.state(txn, ref)
        for row in rows:
            st, _ = dbs.merge_row(txn, st, row)
        return st


def listing(dbs, st, q):
    with dbs.env.begin() as txn:
        return list_entries(lambda s, i, r: dbs.iter_rows(txn, st.cid, s, i, r), q)


LONG = "x" * 470
names_st = st.lists(st.sampled_from(["a", "a/b", "a/c", "b", "b-1", "\u00e9/z", LONG + "a" * 20,
                                     LONG + "a" * 20 + "/q", LONG + "b" * 30, LONG + "a" * 10,
                                     "x" * 480, "x" * 481]), max_size=12)


@given(names_st, st.lists(st.booleans(), max_size=12),
       st.sampled_from(["", "a", LONG, "x" * 480]), st.sampled_from(["", "/"]),
       st.sampled_from(["", "a/b", LONG + "a" * 15, "x" * 481]), st.sampled_from(["", "b", "z"]),
       st.integers(1, 8), st.booleans())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_scan_matches_memory_model(dbs, names, deleted, prefix, delim, marker, end, limit, reverse):
    ref = DbRef("container", "acct", f"c{next(_SEQ)}")  # the env outlives one example
    with dbs.env.begin(write=True) as txn:
        st = dbs.state(txn, ref) or dbs.create(txn, ref, 1, DbInfo(Timestamp(1), Timestamp(1)))
    rows = {n: ObjectRow(n, Timestamp(5 + i), i, deleted=deleted[i] if i < len(deleted) else False)
            for i, n in enumerate(names)}
    st = put_rows(dbs, rows.values(), ref)
    # the model: the same rows merged in memory
    with dbs.env.begin() as txn:
        stored = list(dbs.iter_rows(txn, st.cid, None, True, False))
    model = {}
    for row in rows.values():
        model[row.name] = merge_object_rows(model.get(row.name), row)
    for row in stored:
        assert model[row.name] == row
    q = ListingQuery(prefix, delim, marker, end, limit, reverse)
    assert listing(dbs, st, q) == list_entries(scan_sorted(list(model.values())), q)


def test_counts_hash_and_rows_since(dbs):
    st = make_db(dbs)
    t = [Timestamp(100 + i) for i in range(10)]
    st = put_rows(dbs, [ObjectRow("o1", t[1], 10), ObjectRow("o2", t[2], 5),
                        ObjectRow("o1", t[0], 99)])  # older o1 loses (invariant 2)
    assert (st.row_count, st.object_count, st.bytes_used, st.max_row) == (2, 2, 15, 2)
    assert st.hash == row_digest(ObjectRow("o1", t[1], 10)) ^ row_digest(ObjectRow("o2", t[2], 5))
    st = put_rows(dbs, [ObjectRow("o1", t[3], deleted=True)])
    assert (st.row_count, st.bytes_used, st.max_row) == (1, 5, 3)
    with dbs.env.begin() as txn:
        rows, point = dbs.rows_since(txn, st, 0, 100)
        assert [r.name for r in rows] == ["o2", "o1"] and point == 3  # o1 moved to row 3
        rows, point2 = dbs.rows_since(txn, st, 2, 100)
        assert [r.name for r in rows] == ["o1"] and rows[0].deleted and point2 == 3
        rows, _ = dbs.rows_since(txn, st, 0, 1)
        assert len(rows) == 1
        assert dbs.state(txn, REF) == st  # persisted with the rows (C1)


def test_sync_two_databases_converge(dbs, tmp_path):
    env2 = lmdb.open(str(tmp_path / "env2"), map_size=1 << 26, max_dbs=16)
    other = ListingDbs(env2)
    a, b = make_db(dbs), make_db(other)
    a = put_rows(dbs, [ObjectRow("x", Timestamp(3), 1), ObjectRow("y", Timestamp(4), 2)])
    b = put_rows(other, [ObjectRow("x", Timestamp(5), 7), ObjectRow("z", Timestamp(6), deleted=True)])
    with dbs.env.begin() as ta, other.env.begin() as tb:
        rows_a, _ = dbs.rows_since(ta, a, 0, 100)
        rows_b, _ = other.rows_since(tb, b, 0, 100)
    a = put_rows(dbs, rows_b)
    b = put_rows(other, rows_a)
    assert a.hash == b.hash and (a.row_count, a.bytes_used) == (b.row_count, b.bytes_used) == (2, 9)
    env2.close()


row_sets = st.lists(st.one_of(
    st.builds(ObjectRow, st.sampled_from(["a", "b", "c/d", LONG + "q" * 20]),
              st.builds(Timestamp, st.integers(1, 9)), st.integers(0, 5), st.just(""), st.just(""),
              st.booleans())), max_size=8)
acct_rows = st.lists(st.builds(ContainerRow, st.sampled_from(["c1", "c2"]),
                               st.builds(Timestamp, st.integers(0, 5)),
                               st.builds(Timestamp, st.integers(0, 5)), st.integers(0, 3),
                               st.integers(0, 3), st.builds(Timestamp, st.integers(0, 5))), max_size=6)


@given(st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_replicas_converge_by_row_sync(dbs, data):
    """Two replicas that took different writes end with equal rows, counts and
    hash after each pulls the other's rows_since(0) (R1/R2, S1, C1)."""
    kind = data.draw(st.sampled_from(["container", "account"]))
    rows = acct_rows if kind == "account" else row_sets
    n = next(_SEQ)
    a_ref = DbRef(kind, f"a{n}", "x" if kind == "container" else None)
    b_ref = DbRef(kind, f"b{n}", "x" if kind == "container" else None)
    with dbs.env.begin(write=True) as txn:
        dbs.create(txn, a_ref, 1, DbInfo(Timestamp(1), Timestamp(1)))
        dbs.create(txn, b_ref, 1, DbInfo(Timestamp(1), Timestamp(1)))
    a = put_rows(dbs, data.draw(rows), a_ref)
    b = put_rows(dbs, data.draw(rows), b_ref)
    with dbs.env.begin() as txn:
        from_a, _ = dbs.rows_since(txn, a, 0, 1000)
        from_b, _ = dbs.rows_since(txn, b, 0, 1000)
    a, b = put_rows(dbs, from_b, a_ref), put_rows(dbs, from_a, b_ref)
    assert (a.hash, a.row_count, a.object_count, a.bytes_used) == \
        (b.hash, b.row_count, b.object_count, b.bytes_used)
    with dbs.env.begin() as txn:
        assert list(dbs.iter_rows(txn, a.cid, None, True, False)) == \
            list(dbs.iter_rows(txn, b.cid, None, True, False))


def test_reclaim_only_old_tombstones(dbs):
    st = make_db(dbs)
    st = put_rows(dbs, [ObjectRow("old", Timestamp.from_seconds(100), deleted=True),
                        ObjectRow("new", Timestamp.from_seconds(900), deleted=True),
                        ObjectRow("live", Timestamp.from_seconds(50), 3)])
    with dbs.env.begin(write=True) as txn:
        st, n = dbs.reclaim(txn, st, Timestamp.from_seconds(1000), 500)
    assert n == 1
    with dbs.env.begin() as txn:
        names = [r.name for r in dbs.iter_rows(txn, st.cid, None, True, False)]
        rows, _ = dbs.rows_since(txn, st, 0, 10)
    assert names == ["live", "new"] and {r.name for r in rows} == {"live", "new"}
    assert st.hash == row_digest(ObjectRow("new", Timestamp.from_seconds(900), deleted=True)) ^ \
        row_digest(ObjectRow("live", Timestamp.from_seconds(50), 3))


def test_reclaim_db_drops_only_old_deleted_empty_databases(dbs):
    st = make_db(dbs)
    st = put_rows(dbs, [ObjectRow("o", Timestamp.from_seconds(100), deleted=True)])
    with dbs.env.begin(write=True) as txn:
        gone = apply_delete(st.info, Timestamp.from_seconds(200), 0)
        st = dbs.set_info(txn, st, gone)
        kept, n = dbs.reclaim_db(txn, st, Timestamp.from_seconds(650), 500)  # row old, delete not
        assert kept is not None and n == 1
        kept, n = dbs.reclaim_db(txn, kept, Timestamp.from_seconds(701), 500)
        assert kept is None and dbs.state(txn, REF) is None
    live = make_db(dbs, DbRef("container", "AUTH_a", "live"))
    with dbs.env.begin(write=True) as txn:
        assert dbs.reclaim_db(txn, live, Timestamp.from_seconds(10**6), 1)[0] is not None


def test_wrong_row_kind_and_partition_index(dbs):
    st = make_db(dbs)
    with pytest.raises(RowError), dbs.env.begin(write=True) as txn:
        dbs.merge_row(txn, st, ContainerRow("c", Timestamp(1)))
    acct = make_db(dbs, DbRef("account", "AUTH_a"), part=7)
    with dbs.env.begin() as txn:
        assert [s.ref for s in dbs.in_partition(txn, "container", 7)] == [REF]
        assert [s.ref for s in dbs.in_partition(txn, "account", 7)] == [acct.ref]
        assert dbs.in_partition(txn, "container", 8) == []


def test_drop_removes_everything(dbs):
    st0 = make_db(dbs)
    with dbs.env.begin(write=True) as txn:
        dbs.set_sync_point(txn, REF, "peer1", 5)
        dbs.set_sync_point(txn, REF, "peer2", 7)
        assert dbs.sync_points(txn, REF) == {"peer1": 5, "peer2": 7}
        with pytest.raises(RowError):
            dbs.set_sync_point(txn, REF, "bad id!", 1)
    assert st0.cid
    other = make_db(dbs, DbRef("container", "AUTH_a", "d"))
    st = put_rows(dbs, [ObjectRow("o", Timestamp(2), 1)])
    put_rows(dbs, [ObjectRow("o", Timestamp(2), 1)], other.ref)
    with dbs.env.begin(write=True) as txn:
        dbs.drop(txn, st)
    with dbs.env.begin() as txn:
        assert dbs.sync_points(txn, REF) == {}
        assert dbs.state(txn, REF) is None and dbs.in_partition(txn, "container", 7) == [
            dbs.state(txn, other.ref)]
        assert len(list(dbs.iter_rows(txn, other.cid, None, True, False))) == 1
        assert list(dbs.iter_rows(txn, st.cid, None, True, False)) == []


def test_dirty_marks_follow_count_changes(dbs):
    st = make_db(dbs)
    with dbs.env.begin(write=True) as txn:
        st = dbs.set_info(txn, st, st.info)
        assert dbs.dirty_refs(txn, 10) == [REF]
        dbs.clear_dirty(txn, REF, st.max_row, st.info)
        assert dbs.dirty_refs(txn, 10) == []
    st = put_rows(dbs, [ObjectRow("o", Timestamp(9), 4)])
    with dbs.env.begin(write=True) as txn:
        assert dbs.dirty_refs(txn, 10) == [REF]
        dbs.clear_dirty(txn, REF, st.max_row - 1, st.info)  # stale report: stays dirty
        assert dbs.dirty_refs(txn, 10) == [REF]
    others = [make_db(dbs, DbRef("container", "AUTH_a", f"x{i}")) for i in range(4)]
    with dbs.env.begin(write=True) as txn:
        for o in others:
            dbs.set_info(txn, o, o.info)
        everyone = dbs.dirty_refs(txn, 100)
        assert len(everyone) == 5
        first = dbs.dirty_refs(txn, 2)
        second = dbs.dirty_refs(txn, 2, after=first[-1].key)
        third = dbs.dirty_refs(txn, 2, after=second[-1].key)
        assert first + second == everyone[:4] and third == [everyone[4], everyone[0]]  # wraps
    row = container_row_of(st)
    assert (row.name, row.object_count, row.bytes_used, row.stats_timestamp) == ("c", 1, 4, Timestamp(9))


async def test_store_group_commit_isolates_failures(tmp_path):
    env = lmdb.open(str(tmp_path / "env"), map_size=1 << 26, max_dbs=16)
    pool = ThreadPool(4)
    committer = GroupCommitter(env, pool)
    store = await ListingStore.open(lambda: env, pool.run, lambda: committer)
    await store.write(lambda dbs, txn: dbs.create(txn, REF, 1, DbInfo(Timestamp(1), Timestamp(1))))
    results: dict[int, object] = {}

    def put(dbs, txn, i):
        st = dbs.state(txn, REF)
        st, _ = dbs.merge_row(txn, st, ObjectRow(f"o{i}", Timestamp(10 + i), i))
        if i % 5 == 0:
            raise NotFound("this request fails after writing")
        return st

    async def one(i):
        try:
            results[i] = await store.write(put, i)
        except NotFound as exc:
            results[i] = exc

    async with trio.open_nursery() as nursery:
        for i in range(1, 21):
            nursery.start_soon(one, i)
    st = await store.read(lambda dbs, txn: dbs.state(txn, REF))
    assert committer.batches < 20  # concurrent writes shared transactions
    assert st.row_count == 16 and all(isinstance(results[i], NotFound) for i in (5, 10, 15, 20))
    names = await store.read(lambda dbs, txn: [r.name for r in dbs.iter_rows(txn, st.cid, None, True, False)])
    assert "o5" not in names and "o4" in names
    rows, point = await store.rows_since(st, 0)
    assert len(rows) == 16 and point == st.max_row
    env.close()
