"""Unit tests for the SLO rules: manifest validation texts, ETag, ranges over pieces."""

from __future__ import annotations

import hashlib
import json

import pytest

from proxy import _slo_core as core

PATH = "/v1/AUTH_test/c/big"


def put_body(*segs):
    return json.dumps(list(segs)).encode()


def head(size, etag, slo=False):
    return core.SegmentHead(200, "200 OK", size, etag, "application/octet-stream",
                            "Tue, 24 Nov 2026 09:45:30 GMT", slo)


def test_valid_manifest_and_etag():
    e1, e2 = hashlib.md5(b"a" * 10).hexdigest(), hashlib.md5(b"b" * 5).hexdigest()
    specs = core.parse_manifest_put(
        put_body({"path": "/s/1", "etag": e1, "size_bytes": 10}, {"path": "s/2", "etag": None, "size_bytes": None}),
        PATH,
    )
    assert [s.path for s in specs] == ["/s/1", "/s/2"]
    stored, total, problems = core.build_manifest(specs, {"/s/1": head(10, e1), "/s/2": head(5, e2)})
    assert problems == []
    assert total == 15
    assert stored[0] == {"name": "/s/1", "bytes": 10, "hash": e1, "content_type": "application/octet-stream",
                         "last_modified": "2026-11-24T09:45:30.000000"}
    assert core.slo_etag(stored) == hashlib.md5((e1 + e2).encode()).hexdigest()
    assert json.loads(core.raw_format(stored))[0] == {"path": "/s/1", "etag": e1, "size_bytes": 10}


@pytest.mark.parametrize(
    "body,text",
    [
        (b"not json", "Manifest must be valid JSON.\n"),
        (b"{}", "Manifest must be a list.\n"),
        (put_body("x"), "Index 0: not a JSON object\n"),
        (put_body({"etag": "x"}), "Index 0: expected keys to include one of 'data' or 'path'\n"),
        (put_body({"path": "/s/1", "bogus": 1}), 'Index 0: extraneous keys "bogus"\n'),
        (put_body({"path": "nocontainer"}), "Index 0: path does not refer to an object. "
                                            "Path must be of the form /container/object.\n"),
        (put_body({"path": "/s/1", "size_bytes": "x"}), "Index 0: invalid size_bytes\n"),
        (put_body({"path": "/s/1", "size_bytes": 0}, {"path": "/s/2"}),
         "Index 0: too small; each segment must be at least 1 byte.\n"),
        (put_body({"path": "/c/big"}), "Index 0: manifest must not include itself as a segment\n"),
        (put_body({"path": "/s/1", "range": "x-y"}), "Index 0: invalid range\n"),
        (put_body({"path": "/s/1", "range": "0-1,3-4"}), "Index 0: multiple ranges (only one allowed)\n"),
        (put_body({"path": "/s/1", "range": "10-", "size_bytes": 5}), "Index 0: unsatisfiable range\n"),
    ],
)
def test_manifest_errors(body, text):
    with pytest.raises(core.SloError) as info:
        core.parse_manifest_put(body, PATH)
    assert info.value.status == 400
    assert info.value.message == text


def test_segment_problems():
    specs = core.parse_manifest_put(
        put_body({"path": "/s/1", "etag": "abc", "size_bytes": 3}, {"path": "/s/missing"},
                 {"path": "/s/2", "size_bytes": 99}), PATH)
    heads = {"/s/1": head(3, "def"), "/s/missing": core.SegmentHead(404, "404 Not Found"),
             "/s/2": head(4, "x")}
    _, _, problems = core.build_manifest(specs, heads)
    assert problems == [["s/1", "Etag Mismatch"], ["s/missing", "404 Not Found"], ["s/2", "Size Mismatch"]]
    assert core.problems_body(problems, "text/plain") == (
        b"Errors:\ns/1, Etag Mismatch\ns/missing, 404 Not Found\ns/2, Size Mismatch\n")


def test_ranged_segment_etag_and_length():
    specs = core.parse_manifest_put(put_body({"path": "/s/1", "range": "2-5"}), PATH)
    stored, total, problems = core.build_manifest(specs, {"/s/1": head(10, "e")})
    assert not problems and total == 4
    assert stored[0]["range"] == "2-5"
    assert core.slo_etag(stored) == hashlib.md5(b"e:2-5;").hexdigest()
    # a range that is the whole object is dropped, as Swift does
    specs = core.parse_manifest_put(put_body({"path": "/s/1", "range": "0-"}), PATH)
    stored, _, _ = core.build_manifest(specs, {"/s/1": head(10, "e")})
    assert "range" not in stored[0]


def test_slice_pieces_matches_byte_slicing():
    data = {"/a": bytes(range(0, 7)), "/b": bytes(range(100, 103)), "/c": bytes(range(200, 210))}
    stored = [{"name": "/a", "bytes": 7, "hash": "x"}, {"name": "/b", "bytes": 3, "hash": "y"},
              {"name": "/c", "bytes": 10, "hash": "z", "range": "2-6"}]
    whole = data["/a"] + data["/b"] + data["/c"][2:7]
    pieces = core.pieces_of(stored)
    for first in range(len(whole)):
        for last in range(first, len(whole)):
            got = b"".join(data[p.path][p.first:p.last + 1] for p in core.slice_pieces(pieces, first, last))
            assert got == whole[first:last + 1]


def test_byte_ranges():
    assert core.parse_byte_ranges("bytes=0-9,20-") == [core.ByteRange(0, 9), core.ByteRange(20, None)]
    assert core.parse_byte_ranges("bytes=-5")[0].resolve(3) == (0, 2)
    assert core.parse_byte_ranges("bytes=5-3") is None
    assert core.parse_byte_ranges("items=1-2") is None
    assert core.ByteRange(10, None).resolve(10) is None
    assert core.ByteRange(2, 100).resolve(10) == (2, 9)


def test_conditionals():
    h = {"if-match": '"abc"'}
    assert core.conditional_status(h, "abc", "", "GET") is None
    assert core.conditional_status({"if-match": "zzz"}, "abc", "", "GET") == 412
    assert core.conditional_status({"if-none-match": "abc"}, "abc", "", "GET") == 304
    assert core.conditional_status({"if-none-match": "*"}, "abc", "", "HEAD") == 304


def test_manifest_content_type_round_trip_and_listing_rewrite():
    ct = core.manifest_content_type("video/mp4", 3145728, "abc123")
    assert core.clean_content_type(ct) == ("video/mp4", 3145728, "abc123")
    assert core.clean_content_type("text/plain; charset=utf-8") == ("text/plain; charset=utf-8", None, None)
    listing = json.dumps([
        {"name": "m", "hash": "d00e", "bytes": 166, "content_type": ct, "last_modified": "x"},
        {"name": "plain", "hash": "e09c", "bytes": 10, "content_type": "text/plain", "last_modified": "x"},
    ]).encode()
    rows = json.loads(core.rewrite_listing(listing, True))
    assert rows[0] == {"name": "m", "hash": "d00e", "bytes": 3145728, "content_type": "video/mp4",
                       "last_modified": "x", "slo_etag": '"abc123"'}
    assert rows[1]["bytes"] == 10 and "slo_etag" not in rows[1]
    xml = (b'<?xml version="1.0" encoding="UTF-8"?>\n<container name="c"><object><name>m</name>'
           b'<hash>d00e</hash><bytes>166</bytes><content_type>' + ct.encode() + b'</content_type>'
           b'<last_modified>x</last_modified></object><object><name>p</name><hash>e</hash><bytes>10</bytes>'
           b'<content_type>text/plain</content_type></object></container>')
    out = core.rewrite_listing(xml, False)
    assert b"<bytes>3145728</bytes><content_type>video/mp4</content_type>" in out
    assert b'<slo_etag>"abc123"</slo_etag></object>' in out
    assert b"<bytes>10</bytes><content_type>text/plain</content_type></object>" in out
