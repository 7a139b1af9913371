"""Container and account listings against a real ``ringstack serve storage``
process on 127.0.0.1 with real drive directories, over plain HTTP (httpx).

The tests up to ``test_restart_keeps_everything`` are one scenario on one
module-scoped node and run in file order (each builds on the state before)."""

from __future__ import annotations

import json
import random
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import httpx
import pytest

from tests.support.procs import ringstack_argv, start_server

TS = iter(f"{1700000000 + i}.00000" for i in range(1, 100000))


class Node:
    def __init__(self, tmp) -> None:
        self.drives = {name: tmp / name for name in ("d1", "d2")}
        for path in self.drives.values():
            path.mkdir()
        self.proc = None
        self.start()

    def start(self) -> None:
        spec = ",".join(f"{k}={v}" for k, v in self.drives.items())
        self.proc = start_server(ringstack_argv("serve", "storage", "--drives", spec, "--port", "0"))
        self.http = httpx.Client(base_url=self.proc.url, timeout=10)

    def stop(self) -> None:
        self.http.close()
        self.proc.stop()

    def req(self, method: str, path: str, headers=None, params=None, content=b"") -> httpx.Response:
        return self.http.request(method, quote(path), headers=headers or {}, params=params,
                                 content=content)

    def account_targets(self) -> dict[str, str]:
        return {"X-Account-Host": f"127.0.0.1:{self.proc.port}", "X-Account-Device": "d1",
                "X-Account-Partition": "3"}

    def put_row(self, c: str, name: str, size: int, ts: str | None = None) -> httpx.Response:
        return self.req("PUT", f"/d1/5/AUTH_t/{c}/{name}", {
            "X-Timestamp": ts or next(TS), "X-Size": str(size), "X-Content-Type": "text/plain",
            "X-Etag": "etag-" + quote(name), "X-Backend-Type": "container"})


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = Node(tmp_path_factory.mktemp("listing-node"))
    yield n
    n.stop()


def wait_for(fn, timeout=10.0):
    """Poll an eventually-true condition (the account reporter runs ~1/s)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


NAMES = ["a/1", "a/2", "a/b/3", "b", "b0", "c", "d/x", "z", "\u00e9t\u00e9"]  # code point order


def test_create_and_fill(node):
    assert node.req("PUT", "/d1/3/AUTH_t", {"X-Timestamp": next(TS)}).status_code == 201
    assert node.req("PUT", "/d1/3/AUTH_t", {"X-Timestamp": next(TS)}).status_code == 202
    r = node.req("PUT", "/d1/5/AUTH_t/photos", {"X-Timestamp": next(TS),
                                                "X-Container-Meta-Color": "red", **node.account_targets()})
    assert r.status_code == 201, r.text
    for i, name in enumerate(NAMES):
        assert node.put_row("photos", name, i + 1).status_code == 201
    assert node.req("PUT", "/d1/5/AUTH_t/nope/o", {"X-Timestamp": next(TS), "X-Size": "1",
                                                   "X-Backend-Type": "container"}).status_code == 404
    # an older row loses, a newer tombstone wins (invariant 2)
    assert node.put_row("photos", "z", 999, ts="1600000000.00000").status_code == 201
    r = node.req("HEAD", "/d1/5/AUTH_t/photos")
    assert r.status_code == 204
    assert r.headers["X-Container-Object-Count"] == str(len(NAMES))
    assert r.headers["X-Container-Bytes-Used"] == str(sum(range(1, len(NAMES) + 1)))
    assert r.headers["X-Container-Meta-Color"] == "red"


@pytest.mark.parametrize(("params", "want"), [
    ({}, NAMES),
    ({"prefix": "a/"}, ["a/1", "a/2", "a/b/3"]),
    ({"delimiter": "/"}, ["a/", "b", "b0", "c", "d/", "z", "\u00e9t\u00e9"]),
    ({"prefix": "a/", "delimiter": "/"}, ["a/1", "a/2", "a/b/"]),
    ({"marker": "b", "end_marker": "d"}, ["b0", "c"]),
    ({"limit": "2", "marker": "a/2"}, ["a/b/3", "b"]),
    ({"reverse": "true", "limit": "3"}, ["\u00e9t\u00e9", "z", "d/x"]),
    ({"reverse": "on", "marker": "c", "end_marker": "a/2"}, ["b0", "b", "a/b/3"]),
    ({"reverse": "1", "delimiter": "/"}, ["\u00e9t\u00e9", "z", "d/", "c", "b0", "b", "a/"]),
    ({"marker": "a/", "delimiter": "/"}, ["b", "b0", "c", "d/", "z", "\u00e9t\u00e9"]),
])
def test_listing_json(node, params, want):
    r = node.req("GET", "/d1/5/AUTH_t/photos", params={**params, "format": "json"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert [e.get("name", e.get("subdir")) for e in r.json()] == want


def test_listing_formats(node):
    first = node.req("GET", "/d1/5/AUTH_t/photos", params={"format": "json", "limit": "1"}).json()[0]
    assert set(first) == {"name", "hash", "bytes", "content_type", "last_modified"}
    assert first["hash"] == "etag-a/1" and first["bytes"] == 1 and first["content_type"] == "text/plain"
    assert first["last_modified"].startswith("2023-11-14T22:13:") and len(first["last_modified"]) == 26
    r = node.req("GET", "/d1/5/AUTH_t/photos", params={"delimiter": "/"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert r.content.decode("utf-8").splitlines() == ["a/", "b", "b0", "c", "d/", "z", "\u00e9t\u00e9"]
    r = node.req("GET", "/d1/5/AUTH_t/photos", {"Accept": "application/xml"}, {"prefix": "d", "delimiter": "/"})
    root = ET.fromstring(r.content)
    assert root.tag == "container" and root.get("name") == "photos"
    assert root.find("subdir").get("name") == "d/" and root.find("subdir/name").text == "d/"
    r = node.req("GET", "/d1/5/AUTH_t/photos", {"Accept": "text/xml"}, {"prefix": "c"})
    assert r.headers["Content-Type"].startswith("text/xml")
    assert ET.fromstring(r.content).find("object/bytes").text == "6"
    assert node.req("GET", "/d1/5/AUTH_t/photos", params={"prefix": "nothing"}).status_code == 204
    assert node.req("GET", "/d1/5/AUTH_t/photos", params={"prefix": "q", "format": "json"}).json() == []


@pytest.mark.parametrize(("method", "path", "headers", "params", "status", "why"), [
    ("GET", "/d1/5/AUTH_t/photos", {}, {"limit": "10001"}, 412, "Maximum limit is 10000"),
    ("GET", "/d1/5/AUTH_t/photos", {"Accept": "image/png"}, {}, 406, "no acceptable"),
    ("PUT", "/d1/5/AUTH_t/x", {}, {}, 400, "X-Timestamp"),
    ("PUT", "/d1/5/AUTH_t/x", {"X-Timestamp": "soon"}, {}, 400, "bad timestamp"),
    ("PUT", "/d1/5/AUTH_t/x", {"X-Timestamp": "1.0", "X-Account-Host": "h:1"}, {}, 400, "line up"),
    ("GET", "/d1/5/AUTH_t/never", {}, {}, 404, "not found"),
    ("GET", "/d9/5/AUTH_t/photos", {}, {}, 507, "d9"),
])
def test_bad_requests_say_why(node, method, path, headers, params, status, why):
    r = node.req(method, path, headers, params)
    assert r.status_code == status and why in r.text


def test_delete_rules_and_tombstones(node):
    r = node.req("DELETE", "/d1/5/AUTH_t/photos", {"X-Timestamp": next(TS)})
    assert r.status_code == 409 and "not empty" in r.text
    assert node.req("PUT", "/d1/5/AUTH_t/tmp", {"X-Timestamp": next(TS),
                                               **node.account_targets()}).status_code == 201
    node.put_row("tmp", "o", 5)
    assert node.req("DELETE", "/d1/5/AUTH_t/tmp/o", {"X-Timestamp": next(TS),
                                                    "X-Backend-Type": "container"}).status_code == 204
    del_ts = next(TS)
    assert node.req("DELETE", "/d1/5/AUTH_t/tmp", {"X-Timestamp": del_ts,
                                                  **node.account_targets()}).status_code == 204
    r = node.req("GET", "/d1/5/AUTH_t/tmp")
    assert r.status_code == 404 and r.headers["X-Backend-Timestamp"] == del_ts
    assert node.req("DELETE", "/d1/5/AUTH_t/tmp", {"X-Timestamp": next(TS)}).status_code == 404
    assert node.req("PUT", "/d1/5/AUTH_t/tmp", {"X-Timestamp": "1600000000.00000"}).status_code == 409


def test_metadata_post(node):
    r = node.req("POST", "/d1/5/AUTH_t/photos", {"X-Timestamp": next(TS), "X-Remove-Container-Meta-Color": "x",
                                                "X-Container-Meta-Size": "big", "X-Container-Read": ".r:*"})
    assert r.status_code == 204
    h = node.req("HEAD", "/d1/5/AUTH_t/photos").headers
    assert "X-Container-Meta-Color" not in h and h["X-Container-Meta-Size"] == "big"
    assert h["X-Container-Read"] == ".r:*"
    assert node.req("POST", "/d1/3/AUTH_t", {"X-Timestamp": next(TS),
                                            "X-Account-Meta-Quota": "9"}).status_code == 204
    assert node.req("HEAD", "/d1/3/AUTH_t").headers["X-Account-Meta-Quota"] == "9"
    assert node.req("POST", "/d1/3/AUTH_t", {"X-Timestamp": next(TS),
                                            "X-Account-Meta-Quota": ""}).status_code == 204
    assert "X-Account-Meta-Quota" not in node.req("HEAD", "/d1/3/AUTH_t").headers
    assert node.req("POST", "/d1/5/AUTH_t/never", {"X-Timestamp": next(TS)}).status_code == 404


def account_listing(node):
    return node.req("GET", "/d1/3/AUTH_t", params={"format": "json"}).json()


def test_account_listing_follows_containers(node):
    listing = wait_for(lambda: [c for c in account_listing(node)
                                if c["name"] == "photos" and c["count"] == len(NAMES)])
    assert listing and listing[0]["bytes"] == sum(range(1, len(NAMES) + 1))
    assert [c["name"] for c in account_listing(node)] == ["photos"]  # tmp was deleted
    node.put_row("photos", "new-object", 100)
    assert wait_for(lambda: node.req("HEAD", "/d1/3/AUTH_t").headers["X-Account-Object-Count"]
                    == str(len(NAMES) + 1))
    h = node.req("HEAD", "/d1/3/AUTH_t").headers
    assert h["X-Account-Container-Count"] == "1"
    assert h["X-Account-Bytes-Used"] == str(sum(range(1, len(NAMES) + 1)) + 100)
    r = node.req("GET", "/d1/3/AUTH_t", {"Accept": "application/xml"})
    assert ET.fromstring(r.content).find("container/name").text == "photos"
    assert node.req("DELETE", "/d1/3/AUTH_t", {"X-Timestamp": next(TS)}).status_code == 409


def test_replicate_row_sync_between_drives(node):
    hdr = {"X-Backend-Type": "container"}
    parts = node.req("REPLICATE", "/d1/5", hdr).json()
    assert parts["AUTH_t/photos"]["objects"] == len(NAMES) + 1
    src = node.req("REPLICATE", "/d1/5/AUTH_t/photos", hdr,
                   content=json.dumps({"op": "rows_since", "point": 0, "limit": 4})).json()
    assert len(src["rows"]) == 4 and src["point"] < src["max_row"]
    rows, point = list(src["rows"]), src["point"]
    while point < src["max_row"]:
        more = node.req("REPLICATE", "/d1/5/AUTH_t/photos", hdr,
                        content=json.dumps({"op": "rows_since", "point": point})).json()
        rows += more["rows"]
        point = more["point"]
    merged = node.req("REPLICATE", "/d2/5/AUTH_t/photos", hdr,
                      content=json.dumps({"op": "merge", "rows": rows, "info": src["info"]})).json()
    assert merged["summary"]["hash"] == src["hash"]
    peer_id = merged["summary"]["id"]
    r = node.req("REPLICATE", "/d1/5/AUTH_t/photos", hdr,
                 content=json.dumps({"op": "set_sync_point", "remote": peer_id, "point": point}))
    assert r.status_code == 200
    r = node.req("REPLICATE", "/d1/5/AUTH_t/photos", hdr, content=json.dumps({"op": "sync_points"}))
    assert r.json() == {"points": {peer_id: point}}
    r = node.req("REPLICATE", "/d1/5/AUTH_t/photos", hdr, content=json.dumps({"op": "nope"}))
    assert r.status_code == 400 and "unknown REPLICATE op" in r.text
    r = node.req("GET", "/d2/5/AUTH_t/photos", params={"format": "json"})
    assert len(r.json()) == len(NAMES) + 1
    r = node.req("REPLICATE", "/d2/5/AUTH_t/photos", hdr, content=json.dumps({"op": "drop", "hash": "0"}))
    assert r.status_code == 409
    r = node.req("REPLICATE", "/d2/5/AUTH_t/photos", hdr,
                 content=json.dumps({"op": "drop", "hash": src["hash"]}))
    assert r.status_code == 200 and node.req("HEAD", "/d2/5/AUTH_t/photos").status_code == 404


def test_concurrent_rows_newest_wins(node):
    """Racing row PUTs/DELETEs of the same names, sent concurrently in a
    shuffled order: the listing and the counts are those of the newest write
    per name (invariant 2), however the server batched them."""
    rnd = random.Random(7)
    assert node.req("PUT", "/d1/5/AUTH_t/race", {"X-Timestamp": next(TS)}).status_code == 201
    writes = []
    for i in range(120):
        name, ts = f"n{rnd.randrange(12)}", f"{1750000000 + i}.00000"
        writes.append((name, ts, rnd.random() < 0.3, rnd.randrange(1, 50)))
    rnd.shuffle(writes)

    def send(w):
        name, ts, delete, size = w
        with httpx.Client(base_url=node.proc.url, timeout=10) as c:
            if delete:
                r = c.delete(f"/d1/5/AUTH_t/race/{name}", headers={"X-Timestamp": ts,
                                                                   "X-Backend-Type": "container"})
            else:
                r = c.put(f"/d1/5/AUTH_t/race/{name}", headers={
                    "X-Timestamp": ts, "X-Size": str(size), "X-Backend-Type": "container"})
            return r.status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(send, writes)) <= {201, 204}
    newest = {}
    for name, ts, delete, size in writes:
        if name not in newest or ts > newest[name][0]:
            newest[name] = (ts, delete, size)
    live = {n: size for n, (_, delete, size) in newest.items() if not delete}
    listing = node.req("GET", "/d1/5/AUTH_t/race", params={"format": "json"}).json()
    assert {e["name"]: e["bytes"] for e in listing} == live
    h = node.req("HEAD", "/d1/5/AUTH_t/race").headers
    assert (int(h["X-Container-Object-Count"]), int(h["X-Container-Bytes-Used"])) == \
        (len(live), sum(live.values()))


def test_missing_drive_answers_507_while_others_serve(node):
    d2 = node.drives["d2"]
    assert node.req("PUT", "/d2/5/AUTH_t/other", {"X-Timestamp": next(TS)}).status_code == 201
    d2.rename(d2.with_name("d2-away"))
    try:
        for method, headers in (("PUT", {"X-Timestamp": next(TS)}), ("HEAD", {}), ("GET", {})):
            r = node.req(method, "/d2/5/AUTH_t/other", headers)
            assert r.status_code == 507, (method, r.status_code)
        r = node.req("PUT", "/d2/5/AUTH_t/other/o", {"X-Timestamp": next(TS), "X-Backend-Type": "container"})
        assert r.status_code == 507
        assert node.req("HEAD", "/d1/5/AUTH_t/photos").status_code == 204
    finally:
        d2.with_name("d2-away").rename(d2)
    assert node.req("HEAD", "/d2/5/AUTH_t/other").status_code == 204


def test_restart_keeps_everything(node):
    before = node.req("GET", "/d1/5/AUTH_t/photos", params={"format": "json"}).json()
    acct_before = node.req("HEAD", "/d1/3/AUTH_t").headers["X-Account-Object-Count"]
    node.stop()
    node.start()
    assert node.req("GET", "/d1/5/AUTH_t/photos", params={"format": "json"}).json() == before
    h = node.req("HEAD", "/d1/5/AUTH_t/photos").headers
    assert h["X-Container-Object-Count"] == str(len(NAMES) + 1) and h["X-Container-Meta-Size"] == "big"
    assert node.req("HEAD", "/d1/3/AUTH_t").headers["X-Account-Object-Count"] == acct_before
    assert node.req("GET", "/d1/5/AUTH_t/tmp").status_code == 404


def test_failed_account_updates_are_retried(tmp_path):
    """Counts reach an account replica that was down when they changed, even
    across a crash of the container node (the dirty mark is a durable queue
    and the server drains it on its own), and a container PUT does not fail
    because an account replica is unreachable."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    cont = start_server(ringstack_argv("serve", "storage", "--drives", f"d1={tmp_path / 'a'}", "--port", "0"))
    acct = start_server(ringstack_argv("serve", "storage", "--drives", f"d1={tmp_path / 'b'}", "--port", "0"))
    try:
        with httpx.Client(base_url=cont.url, timeout=10) as c:
            assert httpx.put(f"{acct.url}/d1/1/AUTH_r", headers={"X-Timestamp": next(TS)}).status_code == 201
            targets = {"X-Account-Host": f"127.0.0.1:{acct.port}", "X-Account-Device": "d1",
                       "X-Account-Partition": "1"}
            acct.kill()
            assert c.put("/d1/2/AUTH_r/c", headers={"X-Timestamp": next(TS), **targets}).status_code == 201
            for i in range(3):
                assert c.put(f"/d1/2/AUTH_r/c/o{i}", headers={
                    "X-Timestamp": next(TS), "X-Size": "10", "X-Backend-Type": "container"}).status_code == 201
            cont.kill()  # the queue survives a crash; the restarted node drains it unasked
            cont = start_server(ringstack_argv("serve", "storage", "--drives", f"d1={tmp_path / 'a'}",
                                               "--port", "0"))
            acct = start_server(ringstack_argv("serve", "storage", "--drives", f"d1={tmp_path / 'b'}",
                                               "--port", str(acct.port)))

            def counts():
                h = httpx.head(f"{acct.url}/d1/1/AUTH_r").headers
                return (h["X-Account-Container-Count"], h["X-Account-Object-Count"],
                        h["X-Account-Bytes-Used"]) == ("1", "3", "30")

            assert wait_for(counts)
    finally:
        cont.stop()
        acct.stop()
