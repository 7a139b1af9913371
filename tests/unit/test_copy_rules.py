"""Unit tests for server-side copy's header rules and path headers."""

from __future__ import annotations

import pytest

from common.http import Headers
from proxy.copy import parse_path_header, sink_headers

SOURCE = Headers({
    "content-type": "image/png", "content-length": "10", "etag": "abc", "last-modified": "x",
    "x-timestamp": "1.0", "x-object-meta-color": "red", "x-object-sysmeta-secret": "s",
    "content-disposition": "inline", "x-delete-at": "9999999999", "x-static-large-object": "True",
})


def test_default_copy_carries_metadata_and_request_overrides():
    req = Headers({"x-object-meta-color": "blue", "x-copy-from": "/c/o", "content-length": "0",
                   "range": "bytes=0-1", "x-object-meta-new": "1"})
    out = sink_headers(SOURCE, req, fresh=False)
    assert out["x-object-meta-color"] == "blue" and out["x-object-meta-new"] == "1"
    assert out["content-type"] == "image/png" and out["content-disposition"] == "inline"
    assert out["x-delete-at"] == "9999999999" and out["x-object-sysmeta-secret"] == "s"
    for dropped in ("etag", "content-length", "x-timestamp", "x-static-large-object", "x-copy-from",
                    "range", "last-modified"):
        assert dropped not in out


def test_fresh_metadata_keeps_only_sysmeta_and_request():
    out = sink_headers(SOURCE, Headers({"x-fresh-metadata": "true", "content-type": "text/plain"}), fresh=True)
    assert "x-object-meta-color" not in out and "content-disposition" not in out
    assert out["content-type"] == "text/plain" and out["x-object-sysmeta-secret"] == "s"


@pytest.mark.parametrize("value,expected", [
    ("c/o", ("c", "o")), ("/c/o/with/slashes", ("c", "o/with/slashes")), ("c%20x/%E2%98%83", ("c x", "\u2603")),
])
def test_path_header(value, expected):
    assert parse_path_header(value, "Destination") == expected


@pytest.mark.parametrize("value", ["c", "/c", "c/", "/", ""])
def test_bad_path_header(value):
    with pytest.raises(ValueError, match="Destination header must be of the form <container name>/<object name>"):
        parse_path_header(value, "Destination")


@pytest.mark.parametrize("value,ok", [
    ("c/prefix", True), ("c/p/deeper", True), ("c", False), ("c/", False), ("/p", False), ("c//p", False),
    ("c/p?x", False), ("c/p&x", False),
])
def test_dlo_manifest_header(value, ok):
    from common.http import Request
    from proxy._dlo import check_put_header

    resp = check_put_header(Request.make("PUT", "/v1/a/c/o", {"x-object-manifest": value}))
    assert (resp is None) is ok
    if not ok:
        assert resp.status == 400
