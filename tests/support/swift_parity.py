"""Diff ringstack's Swift API against an OpenStack Swift all-in-one, request by request.

Not a test (it needs the Swift venv at /work/swift-venv and memcached): a
developer tool. Starts a ringstack cluster (``tests.support.cluster``) and a
Swift 2.38 all-in-one (``benchmarks._swift_aio``), sends the same requests to
both with tempauth tokens, and prints every difference in status, header
names/values (volatile ones skipped) and body. Usage::

    .venv/bin/python -m tests.support.swift_parity
"""
# ruff: noqa: E501
import http.client
import sys
import tempfile
from collections.abc import Callable
from urllib.parse import urlsplit

from benchmarks import _swift_aio
from tests.support.cluster import start_cluster

SKIP_H = {"x-openstack-request-id", "date", "x-trans-id", "last-modified", "x-timestamp", "x-put-timestamp",
          "server", "connection", "etag"}


def client(url: str, token: str) -> Callable[..., tuple[int, dict[str, str], bytes]]:
    u = urlsplit(url)

    def req(method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=30)
        try:
            conn.request(method, u.path + path, body=body, headers={"X-Auth-Token": token, **(headers or {})})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    return req


CASES = [
    ("HEAD", "", None, {}), ("PUT", "/cmp", None, {}), ("PUT", "/cmp", None, {}), ("HEAD", "/cmp", None, {}),
    ("GET", "/cmp?format=xml", None, {}), ("POST", "/cmp", None, {"X-Container-Meta-A": "1"}),
    ("PUT", "/cmp/o1", b"hello", {"Content-Type": "text/plain", "X-Object-Meta-Color": "red"}),
    ("PUT", "/cmp/o3", b"x" * 100, {"ETag": "bad"}), ("GET", "/cmp/o1", None, {"Range": "bytes=10-20"}),
    ("GET", "/cmp/o1", None, {"If-Match": "nope"}), ("POST", "/cmp/missing", None, {}),
    ("GET", "/cmp?limit=10001", None, {}), ("GET", "/nocont", None, {}), ("PUT", "/nocont/o", b"x", {}),
    ("DELETE", "/cmp", None, {}), ("PUT", "/cmp/o6", b"x", {"X-Delete-At": "1"}),
    ("PUT", "/cmp/" + "o" * 1025, b"x", {}), ("PUT", "/cmp/m", b"x", {"X-Object-Meta-K": "v" * 257}),
    ("COPY", "/cmp/o1", None, {"Destination": "cmp/o1copy"}), ("PATCH", "/cmp/o1", None, {}),
    ("GET", "/cmp/o%00", None, {}), ("DELETE", "/cmp/o1", None, {}), ("DELETE", "/cmp/o1", None, {}),
    ("PUT", "/c2", None, {"X-Container-Meta-Keep": "a", "X-Container-Meta-Drop": "b"}),
    ("POST", "/c2", None, {"X-Remove-Container-Meta-Drop": "x"}), ("HEAD", "/c2", None, {}),
    ("PUT", "/c2/d", b"0123456789", {"Content-Type": "text/x", "Content-Disposition": "attachment", "Content-Encoding": "gzip", "X-Object-Meta-A": "1"}),
    ("GET", "/c2/d", None, {"Range": "bytes=-3"}), ("GET", "/c2/d", None, {"Range": "bytes=5-"}),
    ("GET", "/c2/d", None, {"If-Modified-Since": "Tue, 01 Jan 2030 00:00:00 GMT"}),
    ("GET", "/c2/d", None, {"If-Unmodified-Since": "Tue, 01 Jan 2000 00:00:00 GMT"}),
    ("POST", "/c2/d", None, {"Content-Type": "text/y"}), ("HEAD", "/c2/d", None, {}),
    ("PUT", "/c2/copy", b"", {"X-Copy-From": "c2/d"}), ("HEAD", "/c2/copy", None, {}),
    ("PUT", "/c2/%E2%98%83", b"snow", {}), ("GET", "/c2/%E2%98%83", None, {}),
    ("PUT", "/c2/dir/", b"", {}), ("GET", "/c2?format=json&delimiter=/", None, {}),
    ("GET", "/c2?end_marker=d&format=json", None, {}), ("GET", "/c2?prefix=dir", None, {}),
    ("GET", "/c2/d?format=json", None, {}), ("GET", "/c2/d", None, {"X-Newest": "true"}),
    ("PUT", "/c2/exp", b"x", {"X-Delete-After": "1000"}), ("HEAD", "/c2/exp", None, {}),
    ("PUT", "/c2/inm", b"x", {"If-None-Match": "*"}), ("PUT", "/c2/inm", b"x", {"If-None-Match": "*"}),
    ("PUT", "/c2/inm2", b"x", {"If-None-Match": "abc"}),
    ("GET", "?format=json", None, {}), ("GET", "?format=xml", None, {}), ("GET", "", None, {}),
    ("GET", "?prefix=c&limit=1&format=json", None, {}),
    ("DELETE", "/c3", None, {}), ("PUT", "/c3", None, {}), ("DELETE", "/c3", None, {}), ("HEAD", "/c3", None, {}),
    ("OPTIONS", "/c2/d", None, {}),
    ("GET", "/c2/d", None, {"Range": "bytes=abc"}),
    ("HEAD", "/c2/nope", None, {}),
]


def diff(a: tuple[int, dict[str, str], bytes], b: tuple[int, dict[str, str], bytes]) -> list[str]:
    (sa, ha, ba), (sb, hb, bb) = a, b
    out = []
    if sa != sb:
        out.append(f"status ours {sa} swift {sb}")
    ka, kb = set(ha) - SKIP_H, set(hb) - SKIP_H
    if ka != kb:
        out.append(f"headers only ours {sorted(ka - kb)} only swift {sorted(kb - ka)}")
    for k in sorted(ka & kb):
        if ha[k] != hb[k] and k not in ("content-length", "x-copied-from-last-modified", "content-type"):
            out.append(f"{k}: ours {ha[k]!r} swift {hb[k]!r}")
    if ba != bb:
        out.append(f"body ours {ba[:80]!r} swift {bb[:80]!r}")
    return out


def main() -> int:
    root = tempfile.mkdtemp()
    aio = _swift_aio.start("/work/swift-venv", root + "/swift")
    try:
        ours = start_cluster(root + "/ringstack")
    except BaseException:
        aio.stop()
        raise
    try:
        token, url = ours.auth("test:tester", "testing")
        req_ours, req_swift = client(url, token), client(aio.storage_url, aio.token)
        for method, path, body, headers in CASES:
            found = diff(req_ours(method, path, body, headers), req_swift(method, path, body, headers))
            if found:
                print(f"{method} {path[:40]} {headers}:\n   " + "\n   ".join(found))
    finally:
        aio.stop()
        ours.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
