"""Bad input through a real proxy process to real storage nodes (issue 4 "Bad
input"; invariant 5, FAULTS 12): a clear 4xx with a body that says why, the
proxy stays up, and nothing partial is visible anywhere (checked on every
storage node directly, and in the container listing).
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.proxy_cluster import NODES, Cluster, start_cluster

A = "AUTH_bad"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("badinput"))
    try:
        assert c.request("PUT", f"/v1/{A}/c")[0] in (201, 202)
        yield c
    finally:
        c.stop()


def raw(cluster: Cluster, data: bytes, *, read: bool = True) -> bytes:
    """Send raw bytes (paths no client library would send) and read the answer."""
    with socket.create_connection(("127.0.0.1", cluster.proxy.port), timeout=10) as s:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def nowhere(cluster: Cluster, obj: str) -> bool:
    """No storage node holds the object, and the listing does not name it."""
    for i in range(NODES):
        if cluster.node_object(i, A, "c", obj)[0] != 404:
            return False
    status, _, body = cluster.request("GET", f"/v1/{A}/c?format=json")
    return status == 200 and obj not in [row["name"] for row in json.loads(body)]


def healthy(cluster: Cluster) -> bool:
    return cluster.proxy.proc.poll() is None and cluster.request("GET", "/healthcheck")[0] == 200


def test_huge_headers_are_refused(cluster: Cluster) -> None:
    resp = raw(cluster, b"GET /v1/%s/c/o HTTP/1.1\r\nHost: x\r\nX-Big: " % A.encode() + b"a" * 200_000 + b"\r\n\r\n")
    assert status_of(resp) in (400, 431)
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 200) for i in range(2000))
    resp = raw(cluster, b"GET /v1/%s/c/o HTTP/1.1\r\nHost: x\r\n" % A.encode() + many + b"\r\n")
    assert status_of(resp) in (400, 431)
    # a metadata value over Swift's limit: 400 with the reason, nothing stored
    status, _, body = cluster.request("PUT", f"/v1/{A}/c/meta-big", b"x", {"X-Object-Meta-Big": "v" * 300})
    assert status == 400 and b"Metadata value longer than 256" in body
    status, _, body = cluster.request("PUT", f"/v1/{A}/c/meta-name", b"x", {"X-Object-Meta-" + "n" * 200: "v"})
    assert status == 400 and b"Metadata name too long" in body
    assert nowhere(cluster, "meta-big") and nowhere(cluster, "meta-name")
    assert healthy(cluster)


def test_nul_and_invalid_utf8_names_get_412(cluster: Cluster) -> None:
    for path in (f"/v1/{A}/c/bad%00name", f"/v1/{A}/c/bad%FFname", f"/v1/{A}/c%C0%AF/o"):
        status, _, body = cluster.request("PUT", path, b"data")
        assert status == 412 and b"Invalid UTF8 or contains NULL" in body, (path, status, body)
        assert cluster.request("GET", path)[0] == 412
    resp = raw(cluster, b"GET /v1/" + A.encode() + b"/c/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(resp) in (400, 412)
    assert healthy(cluster)


def test_dot_dot_names_are_names_not_paths(cluster: Cluster) -> None:
    """Swift keeps ``..`` segments as part of an object name; they never escape
    the container (names are hashed, never used as file paths)."""
    resp = raw(cluster, b"PUT /v1/%s/c/a/../b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" % A.encode())
    assert status_of(resp) == 201
    status, _, body = cluster.request("GET", f"/v1/{A}/c/a/../b".replace("..", "%2E%2E"))
    assert status == 200 and body == b"abc"
    assert cluster.request("GET", f"/v1/{A}/c/b")[0] == 404
    # a container named ".." is just a container that does not exist
    resp = raw(cluster, b"PUT /v1/%s/../o HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx" % A.encode())
    assert status_of(resp) == 404
    resp = raw(cluster, b"GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(resp) in (400, 404, 412)
    assert healthy(cluster)


def test_names_and_sizes_over_the_limits(cluster: Cluster) -> None:
    status, _, body = cluster.request("PUT", f"/v1/{A}/c/" + "o" * 1025, b"x")
    assert status == 400 and b"Object name length of 1025 longer than 1024" in body
    status, _, body = cluster.request("PUT", f"/v1/{A}/" + "c" * 257)
    assert status == 400 and b"Container name length" in body
    resp = raw(cluster, b"PUT /v1/%s/c/nolength HTTP/1.1\r\nHost: x\r\n\r\n" % A.encode())
    assert status_of(resp) == 411
    status, _, _ = cluster.request("PUT", f"/v1/{A}/c/limit?x", headers={"Content-Length": "5368709123"})
    assert status == 413
    status, _, body = cluster.request("GET", f"/v1/{A}/c?limit=10001")
    assert status == 412 and b"Maximum limit is 10000" in body
    status, _, body = cluster.request("PUT", f"/v1/{A}/c/delete-at", b"x", {"X-Delete-After": "soon"})
    assert status == 400 and b"X-Delete-After" in body
    assert nowhere(cluster, "nolength") and nowhere(cluster, "delete-at")


def test_wrong_etag_is_422_and_leaves_nothing(cluster: Cluster) -> None:
    status, _, _ = cluster.request("PUT", f"/v1/{A}/c/etag", b"payload", {"ETag": "0" * 32})
    assert status == 422
    assert nowhere(cluster, "etag")
    # a streamed body (over 64 KiB): the proxy hashes it once and the nodes
    # check the client's ETag against the proxy's MD5 (proxy-hashed PUT)
    big = bytes(range(256)) * 1024
    status, _, _ = cluster.request("PUT", f"/v1/{A}/c/etag-big", big, {"ETag": "0" * 32})
    assert status == 422
    chunked = (b"PUT /v1/%s/c/etag-chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"ETag: %s\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n") % (A.encode(), b"1" * 32, len(big), big)
    assert status_of(raw(cluster, chunked)) == 422
    assert nowhere(cluster, "etag-big") and nowhere(cluster, "etag-chunked")
    md5 = hashlib.md5(big).hexdigest()
    status, headers, _ = cluster.request("PUT", f"/v1/{A}/c/etag-good", big, {"ETag": md5})
    assert status == 201 and headers["etag"] == md5
    # every acknowledged replica (at least W = 2) stored the proxy's MD5 as its ETag
    assert sum(cluster.node_object(i, A, "c", "etag-good")[1].get("etag") == md5 for i in range(NODES)) >= 2


def test_client_hanging_up_mid_upload_leaves_nothing(cluster: Cluster) -> None:
    head = b"PUT /v1/%s/c/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    # short body by Content-Length
    with socket.create_connection(("127.0.0.1", cluster.proxy.port), timeout=10) as s:
        s.sendall(head % (A.encode(), b"hangup", 4 << 20) + b"x" * (1 << 20))
    # unterminated chunked body
    with socket.create_connection(("127.0.0.1", cluster.proxy.port), timeout=10) as s:
        s.sendall(b"PUT /v1/%s/c/hangup-chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  % A.encode() + b"10000\r\n" + b"y" * 0x10000 + b"\r\n")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (nowhere(cluster, "hangup") and nowhere(cluster, "hangup-chunked")):
        time.sleep(0.05)
    assert nowhere(cluster, "hangup") and nowhere(cluster, "hangup-chunked")
    assert healthy(cluster)
    # and the proxy still serves writes
    assert cluster.request("PUT", f"/v1/{A}/c/after", b"fine")[0] == 201


def test_slow_drip_upload_times_out_with_408_and_leaves_nothing(cluster: Cluster) -> None:
    """FAULTS 12: a client that stops sending mid-body for longer than the
    proxy's client_timeout (3 s in this cluster) gets 408; nodes discard it."""
    with socket.create_connection(("127.0.0.1", cluster.proxy.port), timeout=20) as s:
        s.sendall(b"PUT /v1/%s/c/drip HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n" % A.encode()
                  + b"z" * 100_000)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer and status_of(answer) == 408, answer[:200]
    assert nowhere(cluster, "drip")
    assert healthy(cluster)


def test_unknown_verbs_and_versions(cluster: Cluster) -> None:
    status, headers, _ = cluster.request("PATCH", f"/v1/{A}/c/o")
    assert status == 405 and "PUT" in headers["allow"]
    assert cluster.request("GET", f"/v2/{A}")[0] == 400
    assert cluster.request("GET", f"/v1/{A}/c/o", headers={"X-Consistency": "most"})[0] == 400
    assert healthy(cluster)
