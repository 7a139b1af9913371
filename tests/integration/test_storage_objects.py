"""The object side of a real ``ringstack serve storage`` process on real drive
directories, over plain HTTP (httpx and raw sockets)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import lmdb
import pytest

from common.bodyhash import BLAKE3, DEFAULT_CHECKSUM, ChunkHasher, root_hash
from ring.hashing import object_hash
from storage_node.sync_core import END as SYNC_END
from storage_node.sync_core import MAGIC as SYNC_MAGIC
from storage_node.sync_core import FileData, FileStart, StreamEnd, SyncDecoder, file_header
from tests.support.procs import ServerProcess, ringstack_argv, start_server

SECRET = "test-objects-secret"
PART = 5


def ts(n: float) -> str:
    return f"{1_700_000_000 + n:.5f}"


class Node:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.drives = {d: tmp_path / d for d in ("d1", "d2")}
        for p in self.drives.values():
            p.mkdir(exist_ok=True)
        self.config = tmp_path / "cluster.toml"
        self.config.write_text(f'[cluster]\nhash_secret = "{SECRET}"\n[storage]\ncontainer_update_timeout = 0.5\n')
        self.proc: ServerProcess | None = None
        self.client = httpx.Client(timeout=10)
        self.part, self.account = PART, "a"  # per-test namespace on a shared server

    def _ns(self, path: str) -> str:
        """Tests write /<d>/5/a/...; map partition 5 and account a to this test's own."""
        segs = path.split("/")
        if len(segs) > 2 and segs[2] == str(PART):
            segs[2] = str(self.part)
        if len(segs) > 3 and segs[3] == "a":
            segs[3] = self.account
        return "/".join(segs)

    def argv(self, *extra: str) -> list[str]:
        drives = ",".join(f"{k}={v}" for k, v in self.drives.items())
        return ringstack_argv("serve", "storage", "--config", str(self.config), "--drives", drives, "--port", "0",
                              *extra)

    def start(self, *extra: str) -> None:
        self.proc = start_server(self.argv(*extra))

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def url(self, path: str) -> str:
        assert self.proc
        return self.proc.url + self._ns(path)

    def put(self, path: str, body: bytes | object, t: float, **headers: str) -> httpx.Response:
        h = {"X-Timestamp": ts(t), "Content-Type": "application/octet-stream", **headers}
        return self.client.put(self.url(path), content=body, headers=h)

    def get(self, path: str, **headers: str) -> httpx.Response:
        return self.client.get(self.url(path), headers=headers)

    def obj_dir(self, drive: str, name: str) -> Path:
        a, c, o = name.split("/", 2)
        h = object_hash(SECRET, self.account if a == "a" else a, c, o)
        return self.drives[drive] / "objects" / str(self.part) / h[-3:] / h


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    n = Node(tmp_path_factory.mktemp("objects-node"))
    n.start()
    yield n
    n.stop()
    n.client.close()


_NS = iter(range(100, 100000))


@pytest.fixture
def node(shared):
    """The shared server, with a partition and account of this test's own."""
    k = next(_NS)
    shared.part, shared.account = k, f"acct{k}"
    yield shared
    if shared.proc:
        print("\n".join(shared.proc.output[-30:]))  # shown when the test failed


@pytest.fixture
def fresh(tmp_path):
    """A server of this test's own (it renames drives, restarts, ...)."""
    n = Node(tmp_path)
    n.start()
    yield n
    if n.proc:
        print("\n".join(n.proc.output[-30:]))
    n.stop()
    n.client.close()


def tmp_files(root: Path) -> list[Path]:
    return list((root / "tmp").iterdir()) if (root / "tmp").is_dir() else []


def wait_for(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_put_get_head_delete_round_trip(node):
    r = node.put("/d1/5/a/c/o", b"hello world", 1, **{"X-Object-Meta-Color": "blue", "Content-Type": "text/plain"})
    assert r.status_code == 201 and r.headers["etag"] == "5eb63bbbe01eeed093cb22bb8f5acdc3"
    g = node.get("/d1/5/a/c/o")
    assert g.status_code == 200 and g.content == b"hello world"
    assert g.headers["x-object-meta-color"] == "blue" and g.headers["content-type"] == "text/plain"
    assert g.headers["x-backend-timestamp"] == ts(1)
    h = node.client.head(node.url("/d1/5/a/c/o"))
    assert h.status_code == 200 and h.headers["content-length"] == "11"
    p = node.client.post(node.url("/d1/5/a/c/o"), headers={"X-Timestamp": ts(2), "X-Object-Meta-Shape": "round"})
    assert p.status_code == 202
    g = node.get("/d1/5/a/c/o")
    assert g.headers.get("x-object-meta-shape") == "round" and "x-object-meta-color" not in g.headers
    assert g.headers["x-backend-timestamp"] == ts(2) and g.headers["x-backend-data-timestamp"] == ts(1)
    d = node.client.delete(node.url("/d1/5/a/c/o"), headers={"X-Timestamp": ts(3)})
    assert d.status_code == 204
    g = node.get("/d1/5/a/c/o")
    assert g.status_code == 404 and g.headers["x-backend-timestamp"] == ts(3)
    assert node.get("/d1/5/a/c/never").headers.get("x-backend-timestamp") is None
    assert node.client.delete(node.url("/d1/5/a/c/o"), headers={"X-Timestamp": ts(4)}).status_code == 404
    assert node.client.delete(node.url("/d1/5/a/c/o"), headers={"X-Timestamp": ts(3.5)}).status_code == 409
    assert sorted(p.name for p in node.obj_dir("d1", "a/c/o").iterdir()) == [f"{ts(4)}.ts"]
    # names are percent-encoded UTF-8 and may contain slashes
    assert node.put("/d1/5/a/c/%C3%A9t%C3%A9/x%20y", b"unicode", 1).status_code == 201
    assert node.get("/d1/5/a/c/%C3%A9t%C3%A9/x%20y").content == b"unicode"
    assert node.obj_dir("d1", "a/c/\u00e9t\u00e9/x y").is_dir()
    assert node.get("/d1/5/a/c/%FF").status_code == 400


def test_bad_requests_get_clear_4xx(node):
    r = node.client.put(node.url("/d1/5/a/c/o"), content=b"x")
    assert r.status_code == 400 and b"X-Timestamp" in r.content
    r = node.put("/d1/5/a/c/o", b"x", 1, **{"X-Delete-At": "12"})
    assert r.status_code == 400 and b"past" in r.content
    r = node.put("/d1/5/a/c/o", b"abc", 1, ETag="0" * 32)
    assert r.status_code == 422
    assert node.get("/d1/5/a/c/o").status_code == 404
    assert tmp_files(node.drives["d1"]) == []
    assert node.get("/d1/notapart/a/c/o").status_code == 400
    assert node.get("/d9/5/a/c/o").status_code == 507


def test_ranges_multirange_416_and_conditionals(node):
    body = bytes(range(256)) * 4
    etag = node.put("/d1/5/a/c/r", body, 1).headers["etag"]
    g = node.get("/d1/5/a/c/r", Range="bytes=10-19")
    assert g.status_code == 206 and g.content == body[10:20] and g.headers["content-range"] == "bytes 10-19/1024"
    assert node.get("/d1/5/a/c/r", Range="bytes=-5").content == body[-5:]
    g = node.get("/d1/5/a/c/r", Range="bytes=0-1,100-102")
    assert g.status_code == 206 and g.headers["content-type"].startswith("multipart/byteranges;boundary=")
    boundary = g.headers["content-type"].split("=", 1)[1]
    parts = g.content.split(f"--{boundary}".encode())
    assert parts[1].endswith(b"\r\n\r\n" + body[0:2] + b"\r\n") and parts[2].endswith(body[100:103] + b"\r\n")
    g = node.get("/d1/5/a/c/r", Range="bytes=2000-")
    assert g.status_code == 416 and g.headers["content-range"] == "bytes */1024"
    assert node.get("/d1/5/a/c/r", Range="bytes=9-1").status_code == 200  # unparsable: whole object
    assert node.get("/d1/5/a/c/r", **{"If-None-Match": f'"{etag}"'}).status_code == 304
    assert node.get("/d1/5/a/c/r", **{"If-Match": '"nope"'}).status_code == 412
    lm = node.get("/d1/5/a/c/r").headers["last-modified"]
    assert node.get("/d1/5/a/c/r", **{"If-Modified-Since": lm}).status_code == 304


def test_chunked_put_and_large_object(node):
    chunk = b"0123456789abcdef" * 4096

    def gen():
        for _ in range(48):  # 3 MiB in 64 KiB pieces, chunked transfer encoding
            yield chunk

    r = node.put("/d1/5/a/c/big", gen(), 1)
    assert r.status_code == 201
    g = node.get("/d1/5/a/c/big")
    assert g.status_code == 200 and len(g.content) == 48 * len(chunk) and g.content[:16] == chunk[:16]
    g = node.get("/d1/5/a/c/big", Range=f"bytes={(1 << 20) - 3}-{(1 << 20) + 2}")
    assert g.content == (chunk * 48)[(1 << 20) - 3:(1 << 20) + 3]


def test_concurrent_puts_newest_wins_and_older_gets_409(node):
    bodies = {i: f"version {i}".encode() * 100 for i in range(1, 13)}
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: node.put("/d1/5/a/c/race", bodies[i], i).status_code, bodies))
    assert set(statuses) <= {201, 409} and 201 in statuses
    g = node.get("/d1/5/a/c/race")
    assert g.content == bodies[12] and g.headers["x-backend-timestamp"] == ts(12)
    assert [p.name for p in node.obj_dir("d1", "a/c/race").iterdir()] == [f"{ts(12)}.data"]
    r = node.put("/d1/5/a/c/race", b"old", 5)
    assert r.status_code == 409 and r.headers["x-backend-timestamp"] == ts(12)
    assert node.put("/d1/5/a/c/race", b"new", 13, **{"If-None-Match": "*"}).status_code == 412
    assert node.put("/d1/5/a/c/fresh", b"new", 13, **{"If-None-Match": "*"}).status_code == 201


def test_client_hangs_up_mid_put_leaves_nothing(node):
    assert node.proc
    base = "\n".join(node.proc.output).count('status":499')
    with socket.create_connection((node.proc.host, node.proc.port)) as s:
        s.sendall(f"PUT {node._ns('/d1/5/a/c/hang')} HTTP/1.1\r\nHost: x\r\nX-Timestamp: {ts(1)}\r\n"
                  "Content-Length: 100000\r\n\r\n".encode() + b"x" * 70000)
    assert wait_for(lambda: "\n".join(node.proc.output).count('status":499') == base + 1)
    assert tmp_files(node.drives["d1"]) == []
    # a large body streams to a temp file first: that file must go too
    with socket.create_connection((node.proc.host, node.proc.port)) as s:
        s.sendall(f"PUT {node._ns('/d1/5/a/c/hang')} HTTP/1.1\r\nHost: x\r\nX-Timestamp: {ts(2)}\r\n"
                  f"Content-Length: {3 << 20}\r\n\r\n".encode() + b"x" * (2 << 20))
        assert wait_for(lambda: tmp_files(node.drives["d1"]) != [])
    assert wait_for(lambda: "\n".join(node.proc.output).count('status":499') == base + 2)
    assert tmp_files(node.drives["d1"]) == []
    assert node.get("/d1/5/a/c/hang").status_code == 404
    assert not node.obj_dir("d1", "a/c/hang").exists() or not list(node.obj_dir("d1", "a/c/hang").iterdir())


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_byte_is_quarantined_on_get_and_by_the_auditor(node):
    def quarantined() -> float:
        m = re.search(r"^ringstack_storage_quarantined ([0-9.]+)$", node.client.get(node.url("/metrics")).text, re.M)
        return float(m.group(1)) if m else 0.0

    before = quarantined()
    node.put("/d1/5/a/c/small", b"precious bytes", 1)
    d = node.obj_dir("d1", "a/c/small")
    _flip(d / f"{ts(1)}.data", 3)
    assert node.get("/d1/5/a/c/small").status_code == 404  # detected before any byte is sent
    assert (node.drives["d1"] / "quarantined" / "objects" / d.name).is_dir()
    assert node.get("/d1/5/a/c/small").status_code == 404
    # a corrupt later chunk: the response is cut short, never completed
    big = b"z" * (3 << 20)
    node.put("/d1/5/a/c/big", big, 1)
    bd = node.obj_dir("d1", "a/c/big")
    _flip(bd / f"{ts(1)}.data", (2 << 20) + 5)
    with pytest.raises(httpx.HTTPError):
        node.get("/d1/5/a/c/big")
    assert node.get("/d1/5/a/c/big").status_code == 404
    assert (node.drives["d1"] / "quarantined" / "objects" / bd.name).is_dir()
    # the auditor finds one nobody read
    node.put("/d2/5/a/c/quiet", b"quiet bytes" * 100, 1)
    _flip(node.obj_dir("d2", "a/c/quiet") / f"{ts(1)}.data", 50)
    out = subprocess.run(
        ringstack_argv("serve", "auditor", "--config", str(node.config), "--drives",
                       ",".join(f"{k}={v}" for k, v in node.drives.items()), "--once", "--log-level", "ERROR"),
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["quarantined"] == 1 and stats["objects"] >= 1
    assert node.get("/d2/5/a/c/quiet").status_code == 404
    assert quarantined() == before + 2


def test_missing_drive_answers_507_while_the_other_serves(fresh):
    assert fresh.put("/d2/5/a/c/o", b"on d2", 1).status_code == 201
    fresh.drives["d2"].rename(fresh.tmp / "d2-gone")
    r = fresh.put("/d2/5/a/c/o2", b"x", 2)
    assert r.status_code == 507 and b"d2" in r.content
    assert fresh.get("/d2/5/a/c/o").status_code == 507
    assert fresh.put("/d1/5/a/c/o", b"on d1", 1).status_code == 201
    assert fresh.get("/d1/5/a/c/o").content == b"on d1"
    assert not fresh.drives["d2"].exists()  # never recreated behind the operator's back


def test_restart_keeps_everything(fresh):
    for i in range(5):
        fresh.put(f"/d1/5/a/c/o{i}", f"body {i}".encode(), 1)
    fresh.client.delete(fresh.url("/d1/5/a/c/o0"), headers={"X-Timestamp": ts(2)})
    before = fresh.client.request("REPLICATE", fresh.url("/d1/5")).json()
    fresh.stop()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (fresh.drives["d1"] / "tmp" / f"{dead.pid}-crashed.tmp").write_bytes(b"half a body")  # a writer that died
    (fresh.drives["d1"] / "tmp" / f"{os.getpid()}-alive.tmp").write_bytes(b"in flight")  # a live one
    fresh.start()
    assert [p.name for p in tmp_files(fresh.drives["d1"])] == [f"{os.getpid()}-alive.tmp"]
    (fresh.drives["d1"] / "tmp" / f"{os.getpid()}-alive.tmp").unlink()
    assert fresh.get("/d1/5/a/c/o0").status_code == 404
    assert [fresh.get(f"/d1/5/a/c/o{i}").content for i in range(1, 5)] == [f"body {i}".encode() for i in range(1, 5)]
    assert fresh.client.request("REPLICATE", fresh.url("/d1/5")).json() == before


def test_replicate_hashes_change_and_suffixes_travel(node):
    rep = lambda path: node.client.request("REPLICATE", node.url(path)).json()  # noqa: E731
    assert rep("/d1/5") == {}
    node.put("/d1/5/a/c/o", b"one", 1)
    h = object_hash(SECRET, node.account, "c", "o")
    first = rep("/d1/5")
    assert list(first) == [h[-3:]]
    node.client.post(node.url("/d1/5/a/c/o"), headers={"X-Timestamp": ts(2), "X-Object-Meta-A": "1"})
    second = rep("/d1/5")
    assert second[h[-3:]] != first[h[-3:]]
    # ship the partition to d2 with the sync stream; d2 then agrees
    stream = node.client.request("SUFFIXES", node.url("/d1/5"))
    assert stream.status_code == 200
    merged = node.client.request("MERGE", node.url("/d2/5"), content=stream.content).json()
    assert merged == {"complete": True, "files": 2, "rejected": 0}
    assert rep("/d2/5") == second
    g = node.get("/d2/5/a/c/o")
    assert g.content == b"one" and g.headers["x-object-meta-a"] == "1"
    assert node.part in node.client.request("PARTITIONS", node.url("/d2")).json()
    objs = node.client.request("OBJECTS", node.url("/d2/5")).json()
    assert [o["name"] for o in objs] == [f"/{node.account}/c/o"]
    # a drop only happens when the hashes still match
    assert node.client.request("DROP", node.url("/d1/5"), content=json.dumps({"abc": "x"})).status_code == 409
    assert node.client.request("DROP", node.url("/d1/5"), content=json.dumps(second)).status_code == 204
    assert node.get("/d1/5/a/c/o").status_code == 404 and rep("/d1/5") == {}
    # a file lost behind the index's back: found when the suffix is rehashed
    for f in node.obj_dir("d2", "a/c/o").iterdir():
        f.unlink()
    assert rep(f"/d2/5/{h[-3:]}") == {}


def test_failed_container_update_is_queued(node):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    r = node.put("/d1/5/a/c/o", b"x", 1, **{"X-Container-Host": f"127.0.0.1:{port}",
                                             "X-Container-Device": "d1", "X-Container-Partition": "9"})
    assert r.status_code == 201
    env = lmdb.open(str(node.drives["d1"] / "index.lmdb"), max_dbs=64, readonly=True, lock=False)
    try:
        with env.begin(db=env.open_db(b"async_pending", create=False)) as txn:
            rows = [json.loads(v) for _, v in txn.cursor()]
    finally:
        env.close()
    rows = [r for r in rows if r["name"].startswith(f"/{node.account}/")]
    assert len(rows) == 1 and rows[0]["method"] == "PUT" and rows[0]["port"] == port
    assert rows[0]["headers"]["X-Size"] == "1" and rows[0]["headers"]["X-Backend-Type"] == "container"


def test_expired_object_reads_as_missing(node):
    at = int(time.time()) + 2
    assert node.put("/d1/5/a/c/exp", b"soon gone", 1, **{"X-Delete-At": str(at)}).status_code == 201
    h = node.client.head(node.url("/d1/5/a/c/exp"))
    assert h.status_code == 404 or h.headers["x-delete-at"] == str(at)
    assert wait_for(lambda: node.get("/d1/5/a/c/exp").status_code == 404, timeout=10)
    assert time.time() >= at  # not before its time


def test_files_without_index_rows_are_still_served(fresh):
    assert fresh.put("/d1/5/a/c/o", b"durable", 1).status_code == 201
    fresh.stop()
    env = lmdb.open(str(fresh.drives["d1"] / "index.lmdb"), max_dbs=64)
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(b"objects", txn=txn), delete=False)  # a crash lost the row
    env.close()
    fresh.start()
    g = fresh.get("/d1/5/a/c/o")
    assert g.status_code == 200 and g.content == b"durable"
    assert fresh.client.request("REPLICATE", fresh.url("/d1/5")).json() != {}


def test_workers_share_the_drives(tmp_path):
    n = Node(tmp_path)
    n.start("--workers", "2")
    try:
        def one(i: int) -> tuple[int, bytes]:
            with httpx.Client(timeout=10) as c:  # a new connection each: spread over the workers
                h = {"X-Timestamp": ts(i), "Content-Type": "text/plain"}
                assert c.put(n.url(f"/d1/5/a/c/w{i % 4}"), content=f"v{i}".encode(), headers=h).status_code in (201, 409)
                return i, c.get(n.url(f"/d1/5/a/c/w{i % 4}")).content
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(1, 21)))
        for k in range(4):
            newest = max(i for i in range(1, 21) if i % 4 == k)
            assert n.get(f"/d1/5/a/c/w{k}").content == f"v{newest}".encode()
        assert len(n.client.request("REPLICATE", n.url("/d1/5")).json()) >= 1
    finally:
        n.stop()
        n.client.close()


def test_container_updates_reach_the_listing_and_if_delete_at(node):
    assert node.proc
    assert node.client.put(node.url("/d2/9/a/c"), headers={"X-Timestamp": ts(0.5)}).status_code == 201
    target = {"X-Container-Host": f"127.0.0.1:{node.proc.port}", "X-Container-Device": "d2",
              "X-Container-Partition": "9"}
    at = str(int(time.time()) + 3600)
    assert node.put("/d1/5/a/c/listed", b"12345", 1, **target, **{"X-Delete-At": at}).status_code == 201
    listing = node.client.get(node.url("/d2/9/a/c"), params={"format": "json"}).json()
    assert [(o["name"], o["bytes"], o["hash"]) for o in listing] == [("listed", 5, "827ccb0eea8a706c4c34a16891f84e7b")]
    # the expirer's conditional DELETE only matches the scheduled time
    r = node.client.delete(node.url("/d1/5/a/c/listed"), headers={"X-Timestamp": ts(2), "X-If-Delete-At": "12"})
    assert r.status_code == 412
    r = node.client.delete(node.url("/d1/5/a/c/listed"), headers={"X-Timestamp": ts(2), "X-If-Delete-At": at,
                                                                  **target})
    assert r.status_code == 204
    assert node.client.get(node.url("/d2/9/a/c"), params={"format": "json"}).json() == []


def test_auditor_task_in_the_server_and_tombstone_reclaim(tmp_path):
    n = Node(tmp_path)
    n.config.write_text(f'[cluster]\nhash_secret = "{SECRET}"\n[storage]\nauditor_bytes_per_second = 1e9\n'
                        'auditor_interval = 0.2\nreclaim_age = 3600.0\n')
    n.start()
    try:
        assert n.put("/d1/5/a/c/o", b"audited bytes", 1).status_code == 201
        d = n.obj_dir("d1", "a/c/o")
        _flip(d / f"{ts(1)}.data", 2)
        quarantined = n.drives["d1"] / "quarantined" / "objects" / d.name
        assert wait_for(quarantined.is_dir, timeout=20)
        # a tombstone older than reclaim_age (2023 < now - 1 h) is reclaimed by the
        # next rehash; a fresh one is kept (invariant 2)
        fresh = time.time() - 1_700_000_000
        n.client.delete(n.url("/d1/5/a/c/old"), headers={"X-Timestamp": ts(1)})
        n.client.delete(n.url("/d1/5/a/c/new"), headers={"X-Timestamp": ts(fresh)})
        assert wait_for(lambda: not n.obj_dir("d1", "a/c/old").exists(), timeout=20)
        assert [p.name for p in n.obj_dir("d1", "a/c/new").iterdir()] == [f"{ts(fresh)}.ts"]
    finally:
        n.stop()
        n.client.close()


def _hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_memory_stays_flat_in_object_size(node):
    """Invariant 4: a 48 MiB object streams through in bounded chunks."""
    assert node.proc
    piece = os.urandom(1 << 16)
    node.put("/d1/5/a/c/warm", piece * 40, 1)  # warm up every code path with a 2.5 MiB object
    node.get("/d1/5/a/c/warm")
    before = _hwm_kib(node.proc.proc.pid)

    def gen():
        for _ in range(48 * 16):
            yield piece

    assert node.put("/d1/5/a/c/huge", gen(), 1).status_code == 201
    with node.client.stream("GET", node.url("/d1/5/a/c/huge")) as r:
        assert r.status_code == 200 and sum(len(c) for c in r.iter_bytes()) == 48 << 20
    grown = _hwm_kib(node.proc.proc.pid) - before
    assert grown < 16 * 1024, f"server peak memory grew {grown} KiB for a 48 MiB object"


def test_slow_drip_gets_408_and_leaves_nothing(tmp_path):
    n = Node(tmp_path)
    n.config.write_text(f'[cluster]\nhash_secret = "{SECRET}"\n[storage]\nclient_timeout = 0.5\n')
    n.start()
    try:
        assert n.proc
        for length in (1000, 3 << 20):  # read-whole and streamed bodies
            with socket.create_connection((n.proc.host, n.proc.port)) as s:
                s.sendall(f"PUT /d1/5/a/c/drip HTTP/1.1\r\nHost: x\r\nX-Timestamp: {ts(1)}\r\n"
                          f"Content-Length: {length}\r\n\r\n".encode() + b"x" * (length // 2))
                s.settimeout(10)
                assert s.recv(100).startswith(b"HTTP/1.1 408")
        assert tmp_files(n.drives["d1"]) == []
        assert n.get("/d1/5/a/c/drip").status_code == 404
    finally:
        n.stop()
        n.client.close()


# -- proxy-hashed PUT (X-Backend-Obj-Trailer: yes) ---------------------------------

def _fingerprint(body: bytes, checksum: str = DEFAULT_CHECKSUM) -> dict[str, str]:
    h = ChunkHasher(checksum=checksum)
    h.update(body)
    md5, digests = h.finish()
    return {"X-Backend-Obj-Etag": md5, "X-Backend-Obj-Root": root_hash(checksum, digests, len(body))}


def _raw_put(n: Node, path: str, body: bytes, t: float, trailers: dict[str, str] | None,
             extra: dict[str, str] | None = None, chunked: bool = True,
             checksum: str | None = DEFAULT_CHECKSUM) -> tuple[int, dict[str, str], bytes]:
    """A PUT as the proxy sends it, over a raw socket (httpx sends no trailers);
    ``checksum=None``: without ``X-Backend-Obj-Checksum``, as earlier proxies."""
    assert n.proc
    hdrs = {"Host": "x", "X-Timestamp": ts(t), "Content-Type": "application/octet-stream",
            "X-Backend-Obj-Trailer": "yes", "Connection": "close", **(extra or {})}
    if checksum is not None:
        hdrs["X-Backend-Obj-Checksum"] = checksum
    if chunked:
        hdrs["Transfer-Encoding"] = "chunked"
        step = 256 * 1024
        framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                          for i in range(0, len(body), step))
        framed += b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in (trailers or {}).items()) + b"\r\n"
    else:
        hdrs["Content-Length"] = str(len(body))
        framed = body
    head = f"PUT {n._ns(path)} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    got = b""
    with socket.create_connection(("127.0.0.1", n.proc.port), timeout=10) as s:
        try:
            s.sendall(head.encode() + framed)
        except OSError:
            pass  # refused before the body: the answer is already there
        try:
            while chunk := s.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
    top, _, rest = got.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, rest


@pytest.mark.parametrize("size", [10_000, 3 * 1048576 + 5])  # the one-hop path and the streamed path
def test_proxy_hashed_put_keeps_the_proxys_etag_when_the_roots_match(node, size):
    body = os.urandom(size)
    fp = _fingerprint(body)
    status, headers, _ = _raw_put(node, "/d1/5/a/c/ph", body, 1, fp, {"X-Backend-Obj-Content-Length": str(size)})
    assert status == 201 and headers["etag"] == fp["X-Backend-Obj-Etag"]
    g = node.get("/d1/5/a/c/ph")
    assert g.status_code == 200 and g.content == body and g.headers["etag"] == fp["X-Backend-Obj-Etag"]
    # unknown length (the client sent chunked): no declared length needed
    status, headers, _ = _raw_put(node, "/d1/5/a/c/ph", body, 2, fp)
    assert status == 201 and node.get("/d1/5/a/c/ph").headers["x-backend-timestamp"] == ts(2)


@pytest.mark.parametrize("size", [10_000, 3 * 1048576 + 5])
def test_a_proxy_of_an_earlier_version_still_writes_blake3_replicas(node, size):
    """Rolling upgrade: a proxy that names no checksum hashed BLAKE3; the node
    computes BLAKE3 too, writes the format-1 trailer, and serves the object
    verified by BLAKE3. A checksum name it does not know is refused (400)."""
    body = os.urandom(size)
    fp = _fingerprint(body, BLAKE3)
    declared = {"X-Backend-Obj-Content-Length": str(size)}
    status, headers, _ = _raw_put(node, "/d1/5/a/c/old", body, 1, fp, declared, checksum=None)
    assert status == 201 and headers["etag"] == fp["X-Backend-Obj-Etag"]
    data = [p for p in node.obj_dir("d1", "a/c/old").iterdir() if p.suffix == ".data"]
    assert len(data) == 1 and data[0].read_bytes().endswith(b"RSTKTRL1")
    g = node.get("/d1/5/a/c/old")
    assert g.status_code == 200 and g.content == body
    status, _, text = _raw_put(node, "/d1/5/a/c/old", body, 2, fp, declared, checksum="sha1")
    assert status == 400 and b"unknown chunk checksum" in text
    assert node.get("/d1/5/a/c/old").headers["x-backend-timestamp"] == ts(1)
    # it replicates as it is, beside a new (xxh3-128) object, from this node's
    # sync stream and from an earlier sender's, whose headers name no checksum
    node.put("/d1/5/a/c/new", body[:5000], 3)
    stream = node.client.request("SUFFIXES", node.url("/d1/5")).content
    events = SyncDecoder().feed(stream)
    starts = {e.file: e.checksum for e in events if isinstance(e, FileStart)}
    assert sorted(starts.values()) == [BLAKE3, DEFAULT_CHECKSUM]
    earlier = SYNC_MAGIC + b"".join(file_header(e.hash, e.file, e.size, e.body) if isinstance(e, FileStart)
                                     else e.data if isinstance(e, FileData) else b""
                                     for e in events if not isinstance(e, StreamEnd)) + SYNC_END
    merge = lambda blob: node.client.request("MERGE", node.url("/d2/5"), content=blob).json()  # noqa: E731
    # the earlier sender's headers say nothing, so BLAKE3: the old file is
    # taken, the new one refused (its xxh3-128 digests do not verify as BLAKE3)
    assert merge(earlier) == {"complete": True, "files": 1, "rejected": 1}
    g = node.get("/d2/5/a/c/old")
    assert g.status_code == 200 and g.content == body and g.headers["etag"] == fp["X-Backend-Obj-Etag"]
    assert node.get("/d2/5/a/c/new").status_code == 404
    assert merge(stream)["rejected"] == 0
    assert node.get("/d2/5/a/c/new").content == body[:5000]
    assert tmp_files(node.drives["d2"]) == []


@pytest.mark.parametrize("size", [10_000, 3 * 1048576 + 5])
def test_proxy_hashed_put_refuses_a_body_that_is_not_what_the_proxy_hashed(node, size):
    """Invariants 3 and 5: a replica stores the proxy's ETag only for bytes
    whose checksum root it checked; anything else is refused, nothing left."""
    body = os.urandom(size)
    fp = _fingerprint(body)
    other = _fingerprint(body[:-1] + bytes([body[-1] ^ 1]))
    declared = {"X-Backend-Obj-Content-Length": str(size)}
    cases = [
        (dict(fp, **{"X-Backend-Obj-Root": other["X-Backend-Obj-Root"]}), declared, 422, b"checksum root"),
        (_fingerprint(body, BLAKE3), declared, 422, b"checksum root"),  # the bytes, but not the checksum named
        ({"X-Backend-Obj-Etag": fp["X-Backend-Obj-Etag"]}, declared, 400, b"X-Backend-Obj-Root"),
        (dict(fp, **{"X-Backend-Obj-Etag": "not-hex"}), declared, 400, b"X-Backend-Obj-Etag"),
        (None, declared, 400, b"trailer"),
        (fp, {"X-Backend-Obj-Content-Length": str(size + 1)}, 499, b"shorter"),
        (fp, {"X-Backend-Obj-Content-Length": "lots"}, 400, b"X-Backend-Obj-Content-Length"),
        (fp, {**declared, "ETag": other["X-Backend-Obj-Etag"]}, 422, b"does not match body MD5"),
    ]
    for trailers, extra, want, why in cases:
        status, _, text = _raw_put(node, "/d1/5/a/c/bad", body, 1, trailers, extra)
        assert (status, why in text) == (want, True), (trailers, extra, text)
    assert _raw_put(node, "/d1/5/a/c/bad", body[:100], 1, fp, chunked=False)[0] == 400  # needs chunked framing
    assert node.get("/d1/5/a/c/bad").status_code == 404
    assert not node.obj_dir("d1", "a/c/bad").exists()
    assert wait_for(lambda: tmp_files(node.drives["d1"]) == [])
