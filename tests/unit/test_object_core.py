"""The object side's pure cores: paths, file rules, timestamps, metadata,
conditionals, ranges, integrity and the sync stream (incl. byte-at-a-time)."""

from __future__ import annotations

import blake3
import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from common.bodyhash import BLAKE3, CHECKSUMS, CHUNK_SIZE, XXH3_128, ChunkHasher, root_hash
from common.timestamp import Timestamp
from ring.hashing import object_hash, suffix_of
from storage_node.conditional_core import (
    Unsatisfiable,
    evaluate_conditions,
    multipart_layout,
    parse_range,
)
from storage_node.integrity import (
    CorruptData,
    decode_trailer,
    encode_trailer,
    verify_chunk,
)
from storage_node.object_core import (
    ObjectError,
    ObjectRecord,
    apply_post,
    check_post,
    check_put_or_delete,
    choose_files,
    post_headers,
    put_headers,
    record_from_files,
    require_timestamp,
    row_supersedes,
)
from storage_node.paths import BadPath, object_dir, parse_suffixes, split_backend_path
from storage_node.sync_core import (
    END,
    MAGIC,
    FileData,
    FileEnd,
    FileStart,
    StreamEnd,
    SyncDecoder,
    SyncError,
    file_header,
)

T = Timestamp.parse


# -- paths ---------------------------------------------------------------------------

def test_split_backend_path_depths_and_slashes_in_object_names():
    p = split_backend_path("/d1/17/AUTH_a/c/dir/sub/o")
    assert (p.drive, p.partition, p.account, p.container, p.obj, p.depth) == ("d1", 17, "AUTH_a", "c", "dir/sub/o", 5)
    assert split_backend_path("/d1/17/AUTH_a/c").depth == 4
    assert split_backend_path("/d1/17/AUTH_a").depth == 3
    assert split_backend_path("/d1/17").depth == 2
    assert split_backend_path("/d1/17/AUTH_a/c/o").name == "/AUTH_a/c/o"


@pytest.mark.parametrize("bad", ["d1/1/a", "/d1", "/d1/x/a", "/../1/a", "/d1/1//c", "/d1/1/a//", "/d1/-1/a"])
def test_split_backend_path_rejects(bad):
    with pytest.raises(BadPath):
        split_backend_path(bad)


def test_object_dir_uses_keyed_hash_and_suffix():
    h = object_hash("s3cret", "a", "c", "o")
    assert len(h) == 32 and suffix_of(h) == h[-3:]
    assert object_dir(9, h) == f"objects/9/{h[-3:]}/{h}"
    assert object_hash("other", "a", "c", "o") != h  # the secret keys it


def test_parse_suffixes():
    assert parse_suffixes("abc-0f1") == ["abc", "0f1"]
    assert parse_suffixes("") == []
    for bad in ("abcd", "xyz", "ABC", "abc-"):
        with pytest.raises(BadPath):
            parse_suffixes(bad)


# -- which file wins -------------------------------------------------------------------

def test_newest_data_wins_and_older_files_are_obsolete():
    fs = choose_files(["0000000001.00000.data", "0000000003.00000.data", "0000000002.00000.ts"])
    assert fs.data == "0000000003.00000.data" and fs.tomb is None
    assert set(fs.obsolete) == {"0000000001.00000.data", "0000000002.00000.ts"}


def test_tombstone_wins_a_tie_and_drops_meta():
    fs = choose_files(["0000000005.00000.data", "0000000005.00000.ts", "0000000006.00000.meta"])
    assert fs.tomb == "0000000005.00000.ts" and fs.data is None and fs.meta is None
    assert set(fs.obsolete) == {"0000000005.00000.data", "0000000006.00000.meta"}


def test_meta_applies_only_when_newer_than_data():
    fs = choose_files(["0000000005.00000.data", "0000000004.00000.meta", "0000000007.00000.meta",
                       "0000000006.00000.meta", "junk.tmp"])
    assert fs.data == "0000000005.00000.data" and fs.meta == "0000000007.00000.meta"
    assert set(fs.obsolete) == {"0000000004.00000.meta", "0000000006.00000.meta", "junk.tmp"}


def test_offsets_order_within_a_tick():
    fs = choose_files(["0000000005.00000_0000000000000002.data", "0000000005.00000_0000000000000001.data"])
    assert fs.data == "0000000005.00000_0000000000000002.data"


@given(st.lists(st.tuples(st.integers(1, 50), st.sampled_from([".data", ".ts", ".meta"])), max_size=12))
def test_choose_files_partitions_the_listing(files):
    names = sorted({f"{t:010d}.00000{ext}" for t, ext in files})
    fs = choose_files(names)
    assert sorted(fs.live + fs.obsolete) == names
    winners = [n for n in names if not n.endswith(".meta")]
    if winners:
        top = max(T(n.rsplit(".", 1)[0]) for n in winners)
        assert T((fs.data or fs.tomb).rsplit(".", 1)[0]) == top


# -- timestamps and metadata rules --------------------------------------------------------

def _rec(data=None, tomb=None, meta=None):
    return ObjectRecord(name="/a/c/o", data_ts=T(data) if data else None, tomb_ts=T(tomb) if tomb else None,
                        meta_ts=T(meta) if meta else None, files=("x",))


def test_put_and_delete_need_a_newer_timestamp():
    check_put_or_delete(None, T("5"))
    check_put_or_delete(_rec(data="5"), T("6"))
    for held in (_rec(data="5"), _rec(tomb="5")):
        for ts in ("5", "4"):
            with pytest.raises(ObjectError) as e:
                check_put_or_delete(held, T(ts))
            assert e.value.status == 409 and e.value.headers["X-Backend-Timestamp"] == T("5").internal
    check_put_or_delete(_rec(data="5", meta="9"), T("6"))  # a newer .meta does not block (Swift)


def test_post_rules():
    with pytest.raises(ObjectError) as e:
        check_post(_rec(tomb="5"), T("6"), now=0)
    assert e.value.status == 404 and e.value.headers["X-Backend-Timestamp"] == T("5").internal
    with pytest.raises(ObjectError) as e:
        check_post(_rec(data="5", meta="7"), T("7"), now=0)
    assert e.value.status == 409
    assert check_post(_rec(data="5", meta="7"), T("8"), now=0).exists


def test_require_timestamp():
    assert require_timestamp({"x-timestamp": "1700000000.5"}) == T("1700000000.50000")
    for h in ({}, {"x-timestamp": "yesterday"}):
        with pytest.raises(ObjectError) as e:
            require_timestamp(h)
        assert e.value.status == 400


def test_post_replaces_user_metadata_but_keeps_sysmeta():
    data = put_headers([("Content-Type", "text/plain"), ("X-Object-Meta-A", "1"), ("X-Object-Sysmeta-S", "s"),
                        ("Content-Encoding", "gzip"), ("X-Unrelated", "no")])
    assert "x-unrelated" not in data and data["x-object-sysmeta-s"] == "s"
    post = post_headers([("X-Object-Meta-B", "2"), ("X-Object-Sysmeta-S", "forged")])
    eff = apply_post(data, post)
    assert eff == {"content-type": "text/plain", "x-object-sysmeta-s": "s", "x-object-meta-b": "2"}


def test_record_from_files_and_row_precedence():
    fs = choose_files(["0000000005.00000.data", "0000000006.00000.meta"])
    rec = record_from_files(fs, {"name": "/a/c/o", "size": 3, "etag": "e", "headers": {"x-object-meta-a": "1"}},
                            {"headers": {"x-object-meta-b": "2"}}, "")
    assert rec.name == "/a/c/o" and rec.meta_ts == T("6") and rec.headers == {"x-object-meta-b": "2"}
    assert ObjectRecord.from_json(rec.to_json()) == rec
    older = record_from_files(choose_files(["0000000005.00000.data"]), {"name": "/a/c/o", "size": 3, "etag": "e"},
                              None, "")
    assert row_supersedes(rec, older) and not row_supersedes(older, rec)


def test_expiry():
    rec = ObjectRecord(name="/a/c/o", data_ts=T("1"), headers={"x-delete-at": "100"})
    assert rec.expired(100) and not rec.expired(99.9)


# -- conditionals -------------------------------------------------------------------------

def test_conditionals_in_rfc_order():
    lm = 1_700_000_000
    assert evaluate_conditions({"if-match": '"abc"'}, "abc", lm, "GET") == 200
    assert evaluate_conditions({"if-match": '"x", "y"'}, "abc", lm, "GET") == 412
    assert evaluate_conditions({"if-match": "*"}, "abc", lm, "GET") == 200
    assert evaluate_conditions({"if-none-match": '"abc"'}, "abc", lm, "GET") == 304
    assert evaluate_conditions({"if-none-match": "*"}, "abc", lm, "PUT") == 412
    assert evaluate_conditions({"if-modified-since": "Tue, 14 Nov 2023 22:13:20 GMT"}, "abc", lm, "GET") == 304
    assert evaluate_conditions({"if-modified-since": "Tue, 14 Nov 2023 22:13:19 GMT"}, "abc", lm, "GET") == 200
    assert evaluate_conditions({"if-unmodified-since": "Tue, 14 Nov 2023 22:13:19 GMT"}, "abc", lm, "GET") == 412
    # If-None-Match takes precedence over If-Modified-Since
    assert evaluate_conditions({"if-none-match": '"zzz"', "if-modified-since": "Tue, 14 Nov 2023 22:13:20 GMT"},
                               "abc", lm, "GET") == 200
    assert evaluate_conditions({"if-modified-since": "garbage"}, "abc", lm, "GET") == 200


# -- ranges ---------------------------------------------------------------------------------

def test_parse_range_cases():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-4", 10) == [(0, 4)]
    assert parse_range("bytes=5-", 10) == [(5, 9)]
    assert parse_range("bytes=-3", 10) == [(7, 9)]
    assert parse_range("bytes=-30", 10) == [(0, 9)]
    assert parse_range("bytes=8-100", 10) == [(8, 9)]
    assert parse_range("bytes=0-0,2-3", 10) == [(0, 0), (2, 3)]
    assert parse_range("bytes=20-30,1-1", 10) == [(1, 1)]
    for ignored in ("bytes=5-1", "items=0-1", "bytes=a-b", "bytes=", "bytes=1-2,,3-4", "bytes=-"):
        assert parse_range(ignored, 10) is None, ignored
    for unsat in ("bytes=10-", "bytes=10-20", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            parse_range(unsat, 10)
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=0-1", 0)


@given(st.integers(0, 200), st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 250)),
                                                st.one_of(st.none(), st.integers(0, 250))), min_size=1, max_size=5))
def test_parse_range_results_are_within_the_object(size, specs):
    specs = [(a, b) for a, b in specs if not (a is None and b is None)]
    if not specs:
        return
    header = "bytes=" + ",".join(f"{'' if a is None else a}-{'' if b is None else b}" for a, b in specs)
    try:
        ranges = parse_range(header, size)
    except Unsatisfiable:
        assert all((a is not None and a >= size) or (a is None and (b == 0 or size == 0)) or
                   (a is not None and b is not None and b < a) for a, b in specs)
        return
    if ranges is None:
        assert any(a is not None and b is not None and b < a for a, b in specs)
        return
    for a, b in ranges:
        assert 0 <= a <= b < size


def test_multipart_layout_length_matches_bytes():
    body = bytes(range(50))
    mp = multipart_layout([(0, 4), (10, 19)], len(body), "text/plain", "BOUND")
    out = b"".join(p.head + body[p.start:p.end + 1] for p in mp.parts) + mp.tail
    assert len(out) == mp.length
    assert out.startswith(b"--BOUND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-4/50\r\n\r\n")
    assert out.endswith(b"\r\n--BOUND--") and mp.content_type == "multipart/byteranges;boundary=BOUND"


# -- integrity --------------------------------------------------------------------------------

@given(st.binary(max_size=3000), st.integers(1, 700), st.sampled_from(sorted(CHECKSUMS)))
def test_chunk_hasher_any_split(data, step, checksum):
    a, b = ChunkHasher(checksum=checksum), ChunkHasher(checksum=checksum)
    a.update(data)
    for i in range(0, len(data), step):
        b.update(data[i:i + step])
    assert a.finish() == b.finish()


@pytest.mark.parametrize(("checksum", "reference"), [(BLAKE3, blake3.blake3), (XXH3_128, xxhash.xxh3_128)])
def test_chunk_hasher_byte_at_a_time_across_a_chunk_boundary(checksum, reference):
    data = bytes(range(256)) * ((CHUNK_SIZE + 1000) // 256)
    h = ChunkHasher(checksum=checksum)
    h.update(data[:CHUNK_SIZE - 3])
    for i in range(CHUNK_SIZE - 3, len(data)):
        h.update(data[i:i + 1])
    etag, digests = h.finish()
    assert len(digests) == 2 and digests[0] == reference(data[:CHUNK_SIZE]).digest()
    assert digests[1] == reference(data[CHUNK_SIZE:]).digest()
    import hashlib

    assert etag == hashlib.md5(data).hexdigest()


@pytest.mark.parametrize(("checksum", "magic", "size"), [(BLAKE3, b"RSTKTRL1", 32), (XXH3_128, b"RSTKTRL2", 16)])
def test_trailer_round_trip_and_corruption(checksum, magic, size):
    """Both trailer formats: the magic names the chunk checksum and the
    digests' width; a file written by an earlier version (BLAKE3) reads as
    it was written."""
    body = b"hello world" * 100_000  # two chunks
    h = ChunkHasher(checksum=checksum)
    h.update(body)
    _, digests = h.finish()
    meta = {"name": "/a/c/o", "size": len(body), "root": root_hash(checksum, digests, len(body))}
    blob = body + encode_trailer(meta, digests, checksum)
    assert blob.endswith(magic) and len(digests) == 2 and all(len(d) == size for d in digests)
    tr = decode_trailer(blob, len(blob))
    assert (tr.meta, tr.body_size, tr.digests, tr.checksum) == (meta, len(body), digests, checksum)
    verify_chunk(1, body[CHUNK_SIZE:], digests, checksum)
    with pytest.raises(CorruptData):
        verify_chunk(0, b"hellO world" + body[11:CHUNK_SIZE], digests, checksum)
    other = XXH3_128 if checksum == BLAKE3 else BLAKE3
    with pytest.raises(CorruptData):  # the right bytes under the other checksum are not a match
        verify_chunk(1, body[CHUNK_SIZE:], digests, other)
    with pytest.raises(CorruptData):
        decode_trailer(blob[:-1] + b"X", len(blob))
    with pytest.raises(ValueError):  # digests of one checksum never framed as the other's
        encode_trailer(meta, digests, other)
    # the other magic on the same bytes: whatever it decodes to, the chunks do not verify
    swapped = blob[:-8] + (b"RSTKTRL2" if magic == b"RSTKTRL1" else b"RSTKTRL1")
    with pytest.raises(CorruptData):
        bad = decode_trailer(swapped, len(swapped))
        verify_chunk(0, swapped[:CHUNK_SIZE], bad.digests, bad.checksum)


# -- sync stream ---------------------------------------------------------------------------------

def _stream(files):
    out = MAGIC
    for h, name, data in files:
        out += file_header(h, name, len(data), len(data) if name.endswith(".data") else 0) + data
    return out + END


def _collect(events):
    files, cur = [], None
    for ev in events:
        if isinstance(ev, FileStart):
            cur = [ev.hash, ev.file, b""]
        elif isinstance(ev, FileData):
            cur[2] += ev.data
        elif isinstance(ev, FileEnd):
            files.append(tuple(cur))
        elif isinstance(ev, StreamEnd):
            files.append("END")
    return files


@given(st.lists(st.tuples(st.sampled_from(["a" * 32, "0123456789abcdef" * 2]),
                          st.sampled_from(["0000000001.00000.data", "0000000002.00000_00000000000000ff.ts"]),
                          st.binary(max_size=40)), max_size=4), st.integers(1, 7))
def test_sync_decoder_any_split(files, step):
    blob = _stream(files)
    whole = SyncDecoder()
    expected = _collect(whole.feed(blob))
    assert expected == [*files, "END"] and whole.complete
    dec = SyncDecoder()
    events = []
    for i in range(0, len(blob), step):
        events += dec.feed(blob[i:i + step])
    assert _collect(events) == expected and dec.complete


def test_sync_decoder_byte_at_a_time_and_errors():
    blob = _stream([("b" * 32, "0000000001.00000.meta", b"{}")])
    dec = SyncDecoder()
    events = [ev for i in range(len(blob)) for ev in dec.feed(blob[i:i + 1])]
    assert _collect(events) == [("b" * 32, "0000000001.00000.meta", b"{}"), "END"]
    with pytest.raises(SyncError):
        SyncDecoder().feed(b"NOTASYNC!\n")
    with pytest.raises(SyncError):
        SyncDecoder().feed(MAGIC + file_header("../etc/passwd" + "x" * 19, "0000000001.00000.data", 1))
    with pytest.raises(SyncError):
        SyncDecoder().feed(MAGIC + file_header("c" * 32, "evil.sh", 1))
    # a .data's chunk checksum travels in its header; absent (an earlier sender): BLAKE3
    named = SyncDecoder().feed(MAGIC + file_header("c" * 32, "0000000001.00000.data", 5, 1, XXH3_128))
    unnamed = SyncDecoder().feed(MAGIC + file_header("c" * 32, "0000000001.00000.data", 5, 1))
    assert (named[0].checksum, unnamed[0].checksum) == (XXH3_128, BLAKE3)
    with pytest.raises(SyncError, match="unknown chunk checksum"):
        SyncDecoder().feed(MAGIC + file_header("c" * 32, "0000000001.00000.data", 5, 1, "md4"))
    partial = SyncDecoder()
    partial.feed(blob[:-2])
    assert not partial.complete


def test_if_delete_at():
    from storage_node.object_core import check_if_delete_at

    rec = ObjectRecord(name="/a/c/o", data_ts=T("1"), headers={"x-delete-at": "100"})
    check_if_delete_at(rec, {})
    check_if_delete_at(rec, {"x-if-delete-at": "100"})
    for bad, status in (({"x-if-delete-at": "99"}, 412),):
        with pytest.raises(ObjectError) as e:
            check_if_delete_at(rec, bad)
        assert e.value.status == status
    with pytest.raises(ObjectError) as e:
        check_if_delete_at(None, {"x-if-delete-at": "100"})
    assert e.value.status == 404
