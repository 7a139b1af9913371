"""python-swiftclient (Connection API and the ``swift`` command) against a real
cluster: 4 storage node processes and a proxy on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from swiftclient import client as swift
from swiftclient.exceptions import ClientException

from tests.support.cluster import Cluster, shared_cluster

SWIFT = str(Path(sys.executable).with_name("swift"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    return shared_cluster(tmp_path_factory)  # containers here are this module's own


@pytest.fixture(scope="module")
def conn(cluster: Cluster):
    return swift.Connection(authurl=cluster.auth_url, user="test:tester", key="testing", retries=0)


def run_swift(cluster: Cluster, cwd: Path, *args: str) -> str:
    argv = [SWIFT, "-A", cluster.auth_url, "-U", "test:tester", "-K", "testing", *args]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, f"{argv}\nstdout:{done.stdout}\nstderr:{done.stderr}"
    return done.stdout


def test_stat_post_upload_download_list_delete(conn):
    headers = conn.head_account()
    assert "x-account-container-count" in headers
    conn.post_account({"X-Account-Meta-Color": "blue"})
    assert conn.head_account()["x-account-meta-color"] == "blue"

    conn.put_container("photos", headers={"X-Container-Meta-Owner": "me"})
    assert conn.head_container("photos")["x-container-meta-owner"] == "me"
    bodies = {"a/1.jpg": os.urandom(1000), "a/2.jpg": os.urandom(70_000), "b.jpg": b"", "c/d/e": b"x" * 10}
    for name, body in bodies.items():
        etag = conn.put_object("photos", name, body, content_type="image/jpeg")
        assert etag == hashlib.md5(body).hexdigest()
    for name, body in bodies.items():
        hdrs, got = conn.get_object("photos", name)
        assert got == body
        assert hdrs["etag"] == hashlib.md5(got).hexdigest()
        assert hdrs["content-type"] == "image/jpeg"

    conn.post_object("photos", "b.jpg", {"X-Object-Meta-Taken": "2024"})
    assert conn.head_object("photos", "b.jpg")["x-object-meta-taken"] == "2024"

    _, listing = conn.get_container("photos", delimiter="/")
    assert [i.get("name") or i.get("subdir") for i in listing] == ["a/", "b.jpg", "c/"]
    _, listing = conn.get_container("photos", prefix="a/", delimiter="/")
    assert [i["name"] for i in listing] == ["a/1.jpg", "a/2.jpg"]
    assert listing[1]["bytes"] == 70_000

    conn.delete_object("photos", "a/1.jpg")
    with pytest.raises(ClientException) as err:
        conn.get_object("photos", "a/1.jpg")
    assert err.value.http_status == 404


def test_copy_carries_metadata_and_x_copy_from(conn):
    conn.put_container("src")
    conn.put_container("dst")
    body = os.urandom(200_000)
    conn.put_object("src", "o", body, headers={"X-Object-Meta-Kept": "yes", "Content-Type": "text/x-test"})
    conn.copy_object("src", "o", destination="/dst/copy1", headers={"X-Object-Meta-Added": "1"})
    hdrs, got = conn.get_object("dst", "copy1")
    assert got == body
    assert hdrs["x-object-meta-kept"] == "yes" and hdrs["x-object-meta-added"] == "1"
    assert hdrs["content-type"] == "text/x-test"

    conn.copy_object("src", "o", destination="/dst/fresh", fresh_metadata=True)
    hdrs = conn.head_object("dst", "fresh")
    assert "x-object-meta-kept" not in hdrs

    resp: dict = {}
    conn.put_object("dst", "copy2", None, headers={"X-Copy-From": "/src/o"}, content_length=0,
                    response_dict=resp)
    assert resp["status"] == 201
    assert dict(resp["headers"])["x-copied-from"] == "src/o"
    assert conn.get_object("dst", "copy2")[1] == body

    with pytest.raises(ClientException) as err:
        conn.copy_object("src", "missing", destination="/dst/nothing")
    assert err.value.http_status == 404
    with pytest.raises(ClientException) as err:
        conn.put_object("dst", "bad", None, headers={"X-Copy-From": "nocontainer"}, content_length=0)
    assert err.value.http_status == 412


def test_swift_cli_slo_upload_download_range_delete(cluster, conn, tmp_path):
    data = os.urandom(2 * 1048576 + 12345)  # three segments of 1 MiB
    (tmp_path / "big.bin").write_bytes(data)
    run_swift(cluster, tmp_path, "upload", "--use-slo", "-S", "1048576", "large", "big.bin")

    hdrs = conn.head_object("large", "big.bin")
    assert hdrs["x-static-large-object"].lower() == "true"
    assert int(hdrs["content-length"]) == len(data)
    _, manifest = conn.get_object("large", "big.bin", query_string="multipart-manifest=get")
    segments = json.loads(manifest)
    assert [s["bytes"] for s in segments] == [1048576, 1048576, 12345]
    seg_etags = "".join(s["hash"] for s in segments)
    assert hdrs["etag"] == f'"{hashlib.md5(seg_etags.encode()).hexdigest()}"'

    # the listing shows the large object's size and SLO ETag, as Swift's does
    _, listing = conn.get_container("large")
    assert [(i["name"], i["bytes"], i["slo_etag"]) for i in listing] == [("big.bin", len(data), hdrs["etag"])]

    run_swift(cluster, tmp_path, "download", "large", "big.bin", "-o", "out.bin")
    assert hashlib.md5((tmp_path / "out.bin").read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()

    # a range across the first segment boundary
    hdrs, part = conn.get_object("large", "big.bin", headers={"Range": "bytes=1048570-1048585"})
    assert part == data[1048570:1048586]
    assert hdrs["content-range"] == f"bytes 1048570-1048585/{len(data)}"

    listing = run_swift(cluster, tmp_path, "list", "large_segments")
    assert len(listing.split()) == 3
    run_swift(cluster, tmp_path, "delete", "large", "big.bin")
    _, left = conn.get_container("large_segments")
    assert left == []
    with pytest.raises(ClientException):
        conn.head_object("large", "big.bin")


def test_slo_manifest_errors_are_swift_texts(conn):
    conn.put_container("segs")
    conn.put_object("segs", "one", b"1" * 100)
    bad = json.dumps([{"path": "/segs/one", "etag": "0" * 32, "size_bytes": 100},
                      {"path": "/segs/missing", "etag": None, "size_bytes": None}])
    with pytest.raises(ClientException) as err:
        conn.put_object("segs", "man", bad, query_string="multipart-manifest=put")
    assert err.value.http_status == 400
    assert "segs/one, Etag Mismatch" in err.value.http_response_content.decode()
    assert "segs/missing, 404 Not Found" in err.value.http_response_content.decode()
    with pytest.raises(ClientException):
        conn.head_object("segs", "man")  # nothing stored (invariant 5)

    # ?heartbeat=on: 202 at once, then Swift's summary of what happened
    url, token = conn.get_auth()
    good = json.dumps([{"path": "/segs/one", "etag": hashlib.md5(b"1" * 100).hexdigest(), "size_bytes": 100}])
    for body, status in ((bad, "400 Bad Request"), (good, "201 Created")):
        http = urllib.request.Request(f"{url}/segs/hb?multipart-manifest=put&heartbeat=on", data=body.encode(),
                                      method="PUT", headers={"X-Auth-Token": token, "Accept": "application/json"})
        with urllib.request.urlopen(http, timeout=30) as resp:
            assert resp.status == 202
            summary = json.loads(resp.read())
        assert summary["Response Status"] == status
    assert summary["Etag"] == f'"{hashlib.md5(hashlib.md5(b"1" * 100).hexdigest().encode()).hexdigest()}"'
    assert conn.head_object("segs", "hb")["x-static-large-object"].lower() == "true"


def test_swift_capabilities_and_stat(cluster, tmp_path):
    out = run_swift(cluster, tmp_path, "capabilities")
    assert "slo" in out and "max_file_size" in out
    assert "Account: AUTH_test" in run_swift(cluster, tmp_path, "stat")


def test_slo_ranges_conditionals_nested_and_manifest_copy(conn):
    conn.put_container("s")
    a, b = os.urandom(100), os.urandom(50)
    ea = conn.put_object("s", "a", a)
    conn.put_object("s", "b", b)
    manifest = json.dumps([{"path": "s/a", "etag": ea, "size_bytes": 100},
                           {"path": "/s/b", "etag": None, "size_bytes": None, "range": "10-19"}])
    resp: dict = {}
    conn.put_object("s", "m", manifest, query_string="multipart-manifest=put", response_dict=resp)
    data = a + b[10:20]
    hdrs, body = conn.get_object("s", "m")
    assert body == data and hdrs["etag"] == dict(resp["headers"])["etag"]

    def status_of(headers):
        try:
            return conn.get_object("s", "m", headers=headers)
        except ClientException as exc:
            return exc.http_status

    assert status_of({"If-None-Match": hdrs["etag"]}) == 304
    assert status_of({"If-Match": '"nope"'}) == 412
    assert status_of({"Range": "bytes=500-"}) == 416
    assert status_of({"Range": "bytes=-5"})[1] == data[-5:]
    multi_hdrs, multi = status_of({"Range": "bytes=0-1,105-109"})
    assert multi_hdrs["content-type"].startswith("multipart/byteranges")
    assert data[0:2] in multi and data[105:110] in multi and b"Content-Range: bytes 105-109/110" in multi

    raw = json.loads(conn.get_object("s", "m", query_string="multipart-manifest=get&format=raw")[1])
    assert raw[1] == {"path": "/s/b", "etag": hashlib.md5(b).hexdigest(), "size_bytes": 50, "range": "10-19"}

    nested = json.dumps([{"path": "s/m"}, {"path": "s/a"}])
    conn.put_object("s", "m2", nested, query_string="multipart-manifest=put")
    assert conn.get_object("s", "m2")[1] == data + a
    assert conn.get_object("s", "m2", headers={"Range": "bytes=95-125"})[1] == (data + a)[95:126]

    # copying a manifest: the concatenation, or (multipart-manifest=get) the manifest itself
    conn.copy_object("s", "m", destination="/s/flat")
    flat = conn.head_object("s", "flat")
    assert "x-static-large-object" not in flat and flat["etag"] == hashlib.md5(data).hexdigest()
    conn.put_object("s", "mcopy", None, headers={"X-Copy-From": "s/m"}, content_length=0,
                    query_string="multipart-manifest=get")
    assert conn.head_object("s", "mcopy")["x-static-large-object"].lower() == "true"
    assert conn.get_object("s", "mcopy")[1] == data

    with pytest.raises(ClientException) as err:
        conn.put_object("s", "x", b"x", headers={"X-Static-Large-Object": "true"})
    assert err.value.http_status == 400


def test_copy_and_slo_read_stream_in_bounded_memory(cluster, conn):
    """Invariant 4: an 8 MiB server-side copy and a 16 MiB SLO read move
    through the proxy without its RSS growing by anything like the object."""
    import threading

    import psutil

    size = 8 * 1048576
    conn.put_container("mem")
    etag = conn.put_object("mem", "big", b"\x5a" * size)
    proxy = psutil.Process(cluster.proxy.proc.pid)
    base = proxy.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], proxy.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        conn.copy_object("mem", "big", destination="/mem/big-copy")
        manifest = json.dumps([{"path": "mem/big", "etag": etag}, {"path": "mem/big-copy", "etag": etag}])
        conn.put_object("mem", "twice", manifest, query_string="multipart-manifest=put")
        _, body = conn.get_object("mem", "twice", resp_chunk_size=1048576)
        total = sum(len(chunk) for chunk in body)
    finally:
        done.set()
        sampler.join()
    assert total == 2 * size
    assert conn.head_object("mem", "big-copy")["etag"] == etag
    assert peak[0] - base < 6 * 1048576, f"proxy RSS grew by {(peak[0] - base) / 1048576:.1f} MiB"


def test_dynamic_large_object(conn):
    conn.put_container("dsegs")
    conn.put_container("dlo")
    parts = [os.urandom(300), os.urandom(1), os.urandom(4000)]
    etags = [conn.put_object("dsegs", f"seg/{i:03d}", p) for i, p in enumerate(parts)]
    conn.put_object("dsegs", "other", b"not part of it")
    conn.put_object("dlo", "man", b"", headers={"X-Object-Manifest": "dsegs/seg/"})
    data = b"".join(parts)
    want_etag = f'"{hashlib.md5("".join(etags).encode()).hexdigest()}"'
    hdrs, body = conn.get_object("dlo", "man")
    assert body == data and hdrs["etag"] == want_etag and hdrs["x-object-manifest"] == "dsegs/seg/"
    head = conn.head_object("dlo", "man")
    assert int(head["content-length"]) == len(data) and head["etag"] == want_etag
    assert conn.get_object("dlo", "man", headers={"Range": "bytes=299-302"})[1] == data[299:303]
    with pytest.raises(ClientException) as err:
        conn.get_object("dlo", "man", headers={"If-None-Match": want_etag})
    assert err.value.http_status == 304
    # a new segment shows up at once: the listing is the manifest
    conn.put_object("dsegs", "seg/004", b"tail")
    assert conn.get_object("dlo", "man")[1] == data + b"tail"
    # copy: the concatenation, or the manifest itself with multipart-manifest=get
    conn.copy_object("dlo", "man", destination="/dlo/flat")
    flat = conn.head_object("dlo", "flat")
    assert "x-object-manifest" not in flat and int(flat["content-length"]) == len(data) + 4
    conn.put_object("dlo", "man2", None, headers={"X-Copy-From": "dlo/man"}, content_length=0,
                    query_string="multipart-manifest=get")
    assert conn.head_object("dlo", "man2")["x-object-manifest"] == "dsegs/seg/"
    assert conn.get_object("dlo", "man2", query_string="multipart-manifest=get")[1] == b""
    with pytest.raises(ClientException) as err:
        conn.put_object("dlo", "bad", b"", headers={"X-Object-Manifest": "nocontainer"})
    assert err.value.http_status == 400


def _spliced_bytes(cluster: Cluster) -> float:
    with urllib.request.urlopen(f"{cluster.proxy_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return float(re.search(r"^ringstack_proxy_spliced_bytes_total (\S+)$", text, re.M).group(1))


def test_large_get_is_relayed_kernel_side_and_byte_exact(cluster, conn):
    """The proxy passes a node's GET body on with splice(2): byte-exact, the
    ETag the client checks, a range of it too, and /metrics counts it."""
    body = os.urandom(4 * 1048576 + 17)
    conn.put_container("relay")
    etag = conn.put_object("relay", "o", body)
    before = _spliced_bytes(cluster)
    hdrs, got = conn.get_object("relay", "o")
    assert got == body and hdrs["etag"] == etag == hashlib.md5(body).hexdigest()
    assert _spliced_bytes(cluster) - before >= 3 * 1048576  # all but the proxy's first read
    hdrs, part = conn.get_object("relay", "o", headers={"Range": "bytes=1000-3500000"})
    assert part == body[1000:3500001] and hdrs["content-range"] == f"bytes 1000-3500000/{len(body)}"


def _pumped(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return float(re.search(rf"^{name}(?:_total)? (\S+)$", text, re.M).group(1))


def test_large_put_is_pumped_in_threads_end_to_end(cluster, conn):
    """A large PUT's body is read, hashed and fanned out in the proxy's pump
    thread and read, hashed and written in a pump thread on each replica's
    node (common/_bodypump.py); the object is byte-exact and its ETag the
    client's MD5."""
    nodes = [f"http://127.0.0.1:{cluster.node_port(i)}" for i in range(len(cluster.nodes))]
    proxy_before = _pumped(cluster.proxy_url, "ringstack_proxy_pumped_bodies")
    nodes_before = sum(_pumped(u, "ringstack_storage_pumped_bodies") for u in nodes)
    body = os.urandom(5 * 1048576 + 3)
    conn.put_container("pumped")
    etag = conn.put_object("pumped", "o", body, content_length=len(body))
    assert etag == hashlib.md5(body).hexdigest()
    assert conn.get_object("pumped", "o")[1] == body
    assert _pumped(cluster.proxy_url, "ringstack_proxy_pumped_bodies") - proxy_before >= 1
    assert sum(_pumped(u, "ringstack_storage_pumped_bodies") for u in nodes) - nodes_before >= 3
