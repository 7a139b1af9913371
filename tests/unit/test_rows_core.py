"""Row merge rules (R1-R4) and listing logic (L1-L3) against naive models."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.timestamp import Timestamp
from storage_node._listing_records import row_from_stored, row_to_stored
from storage_node.listing_core import (
    ListingQuery,
    Subdir,
    format_listing,
    iso_last_modified,
    list_entries,
    negotiate,
    parse_listing_query,
    prefix_successor,
    scan_sorted,
)
from storage_node.rows_core import (
    ContainerRow,
    DbInfo,
    ObjectRow,
    RowError,
    apply_delete,
    apply_put,
    info_from_dict,
    info_to_dict,
    merge_container_rows,
    merge_info,
    merge_object_rows,
    reclaimable,
    row_digest,
    row_from_list,
    row_to_list,
)

ts_st = st.builds(Timestamp, st.integers(0, 50), st.integers(0, 2))
obj_st = st.builds(ObjectRow, st.just("o"), ts_st, st.integers(0, 3),
                   st.sampled_from(["", "text/plain", "image/png"]), st.sampled_from(["", "e1"]),
                   st.booleans(), st.one_of(st.just(Timestamp(0)), ts_st))
cont_st = st.builds(ContainerRow, st.just("c"), ts_st, ts_st, st.integers(0, 3),
                    st.integers(0, 3), ts_st)
meta_st = st.dictionaries(st.sampled_from(["X-Container-Meta-A", "x-container-meta-a",
                                           "X-Container-Meta-B"]),
                          st.tuples(st.sampled_from(["", "v1", "v2"]), ts_st), max_size=3)
info_st = st.builds(lambda c, p, d, s, m: DbInfo(c, p, d, s).with_metadata(m),
                    ts_st, ts_st, ts_st, ts_st, meta_st)


@pytest.mark.parametrize(("strategy", "merge"), [(obj_st, merge_object_rows),
                                                 (cont_st, merge_container_rows),
                                                 (info_st, merge_info)])
@given(data=st.data())
@settings(max_examples=150, deadline=None)
def test_merge_commutative_associative_idempotent(strategy, merge, data):
    a, b, c = data.draw(strategy), data.draw(strategy), data.draw(strategy)
    assert merge(a, b) == merge(b, a)
    assert merge(merge(a, b), c) == merge(a, merge(b, c))
    assert merge(a, a) == a
    assert merge(merge(a, b), b) == merge(a, b)


@given(st.lists(obj_st, min_size=1, max_size=6), st.randoms())
@settings(max_examples=100, deadline=None)
def test_object_merge_any_order_gives_newest(rows, rnd):
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    merged = reduce(merge_object_rows, shuffled, None)
    assert merged.timestamp == max(r.timestamp for r in rows)  # invariant 2
    # R1: the data part from the newest data, the content type from the newest
    # content-type timestamp, each whichever order the rows arrived in
    data = max(rows, key=lambda r: r.data_key())
    ctype = max(rows, key=lambda r: r.ctype_key())
    assert (merged.timestamp, merged.size, merged.etag, merged.deleted) == (
        data.timestamp, data.size, data.etag, data.deleted)
    assert (merged.content_type, merged.ctype_ts) == (ctype.content_type, ctype.ctype_ts)
    assert merged.ctype_ts >= merged.timestamp


def test_post_content_type_neither_lost_nor_clobbers():
    """A POST's content type (data ts t1, ctype ts t3) against PUTs at t2 < t3
    and t4 > t3, in every order (Swift's ctype_timestamp)."""
    t1, t2, t3, t4 = (Timestamp(i * 100) for i in range(1, 5))
    put1 = ObjectRow("o", t1, 5, "text/plain", "e1")
    post = ObjectRow("o", t1, 5, "image/png", "e1", ctype_timestamp=t3)
    put2 = ObjectRow("o", t2, 7, "text/html", "e2")
    put4 = ObjectRow("o", t4, 9, "text/csv", "e4")
    for a, b in ((put1, post), (post, put1)):
        assert merge_object_rows(a, b) == post
    for a, b in ((post, put2), (put2, post)):  # the newer data keeps the POST's newer type
        assert merge_object_rows(a, b) == ObjectRow("o", t2, 7, "image/png", "e2", ctype_timestamp=t3)
    for a, b in ((post, put4), (put4, post)):  # a PUT newer than the POST replaces the type
        assert merge_object_rows(a, b) == put4
    assert ObjectRow("o", t2, ctype_timestamp=t1) == ObjectRow("o", t2)  # normalised


def test_row_wire_backward_compatible():
    t1, t3 = Timestamp(100), Timestamp(300)
    plain = ObjectRow("o", t1, 5, "text/plain", "e1")
    assert row_to_list(plain) == ["o", "o", t1.internal, 5, "text/plain", "e1", 0]
    posted = ObjectRow("o", t1, 5, "image/png", "e1", ctype_timestamp=t3)
    assert row_to_list(posted)[7:] == [t3.internal]
    assert row_from_list(row_to_list(posted)) == posted
    assert row_digest(plain) == row_digest(row_from_list(["o", "o", t1.internal, 5, "text/plain", "e1", 0]))


@given(st.one_of(obj_st, cont_st), st.integers(0, 2**40))
def test_row_stored_round_trip(row, rowid):
    item = json.loads(json.dumps(row_to_stored(row, rowid)))
    assert row_from_stored(item) == row and item[-1] == rowid


def test_container_row_rules():
    t = [Timestamp(i * 100) for i in range(6)]
    live = ContainerRow("c", put_timestamp=t[1], object_count=2, bytes_used=10, stats_timestamp=t[2])
    deleted = ContainerRow("c", put_timestamp=t[0], delete_timestamp=t[3], stats_timestamp=t[3])
    merged = merge_container_rows(live, deleted)
    assert merged.put_timestamp == t[1] and merged.delete_timestamp == t[3]
    assert merged.object_count == 0 and merged.deleted
    stale_stats = ContainerRow("c", put_timestamp=t[4], object_count=7, stats_timestamp=t[1])
    merged = merge_container_rows(merged, stale_stats)
    assert not merged.deleted and merged.object_count == 0  # newer stats (t3) kept


def test_reclaim_only_old_tombstones():
    row = ObjectRow("o", Timestamp.from_seconds(1000), deleted=True)
    assert not reclaimable(row, Timestamp.from_seconds(1000 + 604800), 604800)
    assert reclaimable(row, Timestamp.from_seconds(1000 + 604801), 604800)
    live = ObjectRow("o", Timestamp.from_seconds(1000))
    assert not reclaimable(live, Timestamp.from_seconds(10**9), 1)


@given(st.one_of(obj_st, cont_st))
def test_row_wire_round_trip(row):
    assert row_from_list(json.loads(json.dumps(row_to_list(row)))) == row


@pytest.mark.parametrize("bad", [["o"], ["o", "", "1.0", 0, "", "", 0], ["o", "a\x00", "1", 0, "", "", 0],
                                 ["o", "n", "1", -1, "", "", 0], ["x", 1], None,
                                 ["c", "n", "bad", "1", 0, 0, "1"]])
def test_row_from_list_rejects(bad):
    with pytest.raises(RowError):
        row_from_list(bad)


@given(info_st)
def test_info_round_trip(info):
    assert info_from_dict(json.loads(json.dumps(info_to_dict(info)))) == info


def test_metadata_newest_wins_and_empty_hides():
    info = DbInfo().with_metadata({"x-container-meta-color": ("red", Timestamp(5))})
    info = info.with_metadata({"X-Container-Meta-Color": ("blue", Timestamp(4))})
    assert info.visible_metadata() == {"X-Container-Meta-Color": "red"}
    info = info.with_metadata({"X-Container-Meta-Color": ("", Timestamp(6))})
    assert info.visible_metadata() == {}


def test_put_delete_status():
    info, created = apply_put(None, Timestamp(10), 0)
    assert created and info.created_at == Timestamp(10) and info.status_changed_at == Timestamp(10)
    info2, created = apply_put(info, Timestamp(11), 0)
    assert not created and info2.put_timestamp == Timestamp(11)
    assert info2.status_changed_at == Timestamp(10)
    gone = apply_delete(info2, Timestamp(12), 0)
    assert gone.is_deleted(0) and gone.status_changed_at == Timestamp(12)
    again, created = apply_put(gone, Timestamp(13), 0)
    assert created and not again.is_deleted(0) and again.status_changed_at == Timestamp(13)
    stale, created = apply_put(gone, Timestamp(9), 0)
    assert stale.is_deleted(0)  # an older PUT does not resurrect (invariant 2)


# -- listings against a naive model -------------------------------------------

names_st = st.lists(st.text(alphabet="ab/-\u00e9\U0001f600", min_size=1, max_size=5), max_size=25)
param_st = st.text(alphabet="ab/-\u00e9", max_size=3)


def naive(rows, q: ListingQuery):
    names = sorted(r.name for r in rows if not r.deleted and r.name.startswith(q.prefix))
    if q.reverse:
        names = [n for n in reversed(names) if (not q.marker or n < q.marker)
                 and (not q.end_marker or n > q.end_marker)]
    else:
        names = [n for n in names if (not q.marker or n > q.marker)
                 and (not q.end_marker or n < q.end_marker)]
    out, seen = [], set()
    for n in names:
        end = n.find(q.delimiter, len(q.prefix)) if q.delimiter else -1
        if end >= 0:
            d = n[: end + len(q.delimiter)]
            if d in seen or d == (q.end_marker if q.reverse else q.marker):
                continue
            seen.add(d)
            out.append(("subdir", d))
        else:
            out.append(("row", n))
    return out[: q.limit]


@given(names_st, st.lists(st.booleans(), max_size=25), param_st, st.sampled_from(["", "/", "-", "b/"]),
       param_st, param_st, st.integers(0, 12), st.booleans())
@settings(max_examples=250, deadline=None)
def test_listing_matches_naive_model(names, deleted, prefix, delim, marker, end_marker, limit, reverse):
    rows = {n: ObjectRow(n, Timestamp(1), deleted=(deleted[i] if i < len(deleted) else False))
            for i, n in enumerate(names)}
    q = ListingQuery(prefix, delim, marker, end_marker, limit, reverse)
    got = [("subdir", e.name) if isinstance(e, Subdir) else ("row", e.name)
           for e in list_entries(scan_sorted(list(rows.values())), q)]
    assert got == naive(rows.values(), q)


def test_subdir_skip_does_not_hide_neighbour():
    # Swift's "name > a0" restart would skip an object named exactly "a0".
    rows = [ObjectRow(n, Timestamp(1)) for n in ("a/1", "a/2", "a0", "b")]
    got = list_entries(scan_sorted(rows), ListingQuery(delimiter="/"))
    assert [e.name for e in got] == ["a/", "a0", "b"]


def test_prefix_successor():
    assert prefix_successor("ab") == "ac"
    assert prefix_successor("a\U0010ffff") == "b"
    assert prefix_successor("\ud7ff") == "\ue000"
    assert prefix_successor("\U0010ffff") is None


@pytest.mark.parametrize(("query", "status"), [({"limit": "10001"}, 412), ({"prefix": "a\x00"}, 400),
                                               ({"marker": "\udcff"}, 400)])
def test_bad_listing_query(query, status):
    with pytest.raises(RowError) as info:
        parse_listing_query(query)
    assert info.value.status == status


def test_listing_query_defaults():
    q = parse_listing_query({"limit": "abc", "reverse": "on"})
    assert q.limit == 10_000 and q.reverse
    assert parse_listing_query({"limit": "0"}).limit == 0


@pytest.mark.parametrize(("query", "accept", "want"), [
    ({}, None, "text/plain"),
    ({"format": "json"}, "application/xml", "application/json"),
    ({"format": "XML"}, None, "application/xml"),
    ({"format": "nope"}, None, "text/plain"),
    ({}, "application/json", "application/json"),
    ({}, "text/xml", "text/xml"),
    ({}, "*/*", "text/plain"),
    ({}, "application/*;q=0.9, text/xml", "text/xml"),
    ({}, "text/plain;q=0.1, application/json;q=0.5", "application/json"),
])
def test_negotiate(query, accept, want):
    assert negotiate(query, accept) == want


def test_negotiate_errors():
    with pytest.raises(RowError) as info:
        negotiate({}, "image/png")
    assert info.value.status == 406
    with pytest.raises(RowError) as info:
        negotiate({}, "garbage")
    assert info.value.status == 400


def test_formats_swift_shape():
    ts = Timestamp.parse("1700000000.12345")
    assert iso_last_modified(ts) == "2023-11-14T22:13:20.123450"
    entries = [ObjectRow("a<&>", ts, 3, "text/plain", "abc"), Subdir("d/")]
    body = json.loads(format_listing("container", "c", entries, "application/json"))
    assert body == [{"name": "a<&>", "hash": "abc", "bytes": 3, "content_type": "text/plain",
                     "last_modified": "2023-11-14T22:13:20.123450"}, {"subdir": "d/"}]
    root = ET.fromstring(format_listing("container", "c\"1", entries, "application/xml"))
    assert root.tag == "container" and root.get("name") == 'c"1'
    assert root.find("object/name").text == "a<&>" and root.find("object/bytes").text == "3"
    assert root.find("subdir").get("name") == "d/"
    assert format_listing("container", "c", entries, "text/plain") == b"a<&>\nd/\n"
    assert format_listing("container", "c", [], "text/plain") is None
    acct = [ContainerRow("c1", ts, object_count=2, bytes_used=9)]
    assert json.loads(format_listing("account", "AUTH_a", acct, "application/json")) == [
        {"name": "c1", "count": 2, "bytes": 9, "last_modified": "2023-11-14T22:13:20.123450",
         "storage_policy": "Policy-0"}]
    root = ET.fromstring(format_listing("account", "AUTH_a", acct, "text/xml"))
    assert root.tag == "account" and root.find("container/count").text == "2"
