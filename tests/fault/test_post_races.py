"""FAULTS.md 14 with real processes: POST racing PUT or POST; a POST that
reaches only some replicas; a DELETE after a POST.

Must hold (FAULTS 14, invariant 2: last write wins by timestamp): never a
false 404 for an existing object; the newest metadata wins (a ``.meta``
applies only when newer than the data it sits on, so a PUT clears older POST
metadata); a later DELETE beats an earlier POST. Each test ends as FAULTS.md
says: heal, replicate until a pass changes nothing, then the global checks
G1-G4 per replica on disk (``.data`` / ``.meta`` / ``.ts`` files) and through
the backend API of every primary, not only through the proxy.

Replication ships metadata-only changes because a suffix hash covers every
live file of an object, ``.meta`` included (``storage_node/index.py``
``_hash_rows`` over ``ObjectRecord.files``); ``test_post_reaching_two_of_three``
checks that the suffix hashes differ while one replica lacks the ``.meta``.

``test_overwrites_never_make_a_replica_answer_404`` pins a bug this file
found: a GET/HEAD that read an index row naming a ``.data`` which a racing
PUT had just replaced retried once lock-free and then answered 404 (about
15% of one node's GETs under concurrent overwrites; now and then through the
proxy). ``storage_node/object_server._open`` now settles and opens the
winner under the directory lock.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import pytest

from common.timestamp import Timestamp
from tests.fault import _dbs
from tests.fault._objects import Written, check_replicas, handoff_leftovers, replicate_until_quiet
from tests.support.cluster import Cluster, start_cluster

ACCOUNT = "AUTH_test"
ROUNDS = 12  # of the race test: each round 2 PUTs and 3 POSTs start together


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("post-races"), nodes=4, drives_per_node=1)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def healed(cluster):
    """Every test starts and ends with all nodes up (a failed test must not
    leave the next one a node short)."""
    yield cluster
    for i, proc in enumerate(cluster.nodes):
        if proc is None:
            cluster.restart_node(i)


# -- helpers -----------------------------------------------------------------------

class Client:
    """Plain HTTP through the proxy with a tempauth token, one keep-alive
    connection per thread (swiftclient would hide the exact statuses)."""

    def __init__(self, cluster: Cluster) -> None:
        self.token, url = cluster.auth()
        self.base = urlparse(url).path
        self.port = cluster.proxy_port

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, f"{self.base}/{path}", body=body,
                         headers={"X-Auth-Token": self.token, **(headers or {})})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


def _user_meta(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("x-object-meta-")}


def _node_of(cluster: Cluster, device: str) -> int:
    for i, node in enumerate(cluster.layout.nodes):
        if any(dev == device for dev, _ in node.drives):
            return i
    raise KeyError(device)


@dataclass(frozen=True)
class Replica:
    device: str
    status: int
    meta: dict[str, str]
    body: bytes
    timestamp: str  # X-Backend-Timestamp: newest of data/meta, or the tombstone's
    files: tuple[str, ...]  # on disk in the object's hash directory


def replicas(cluster: Cluster, container: str, name: str) -> list[Replica]:
    """Each primary's answer to a backend GET and its files on its drive."""
    part, primaries = _dbs.rings(cluster)["object"].get_nodes(ACCOUNT, container, name)
    dirs = {d.parents[3].name: d for d in cluster.object_dirs(ACCOUNT, container, name)}
    out = []
    for dev in primaries:
        status, body, hdrs = _dbs.backend(dev.port, "GET", f"/{dev.device}/{part}/{ACCOUNT}/{container}/{name}")
        d = dirs.get(dev.device)
        files = tuple(sorted(p.name for p in d.iterdir())) if d is not None else ()
        out.append(Replica(dev.device, status, _user_meta(hdrs), body, hdrs.get("x-backend-timestamp", ""), files))
    return out


def heal_and_replicate(cluster: Cluster) -> None:
    """FAULTS.md: heal, then object replication and the listing daemons until quiet."""
    for i, proc in enumerate(cluster.nodes):
        if proc is None:
            cluster.restart_node(i)
    replicate_until_quiet(cluster)
    _dbs.run_until_quiet(cluster, ("updater", "container", "account"))


def check_listing(cluster: Cluster, container: str, live: set[str]) -> None:
    """G4: every container replica lists exactly the live objects."""
    listings = _dbs.container_listings(cluster, ACCOUNT, container)
    assert all(names == sorted(live) for names in listings.values()), listings
    assert not handoff_leftovers(cluster)


def _ext(files: tuple[str, ...], ext: str) -> list[str]:
    return [f for f in files if f.endswith(ext)]


# -- (a) POSTs racing PUTs ----------------------------------------------------------------

@dataclass
class Op:
    kind: str  # put | post
    ident: int
    sent: float
    acked: float = 0.0
    status: int | None = None  # None: no answer (info)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _put_body(ident: int) -> bytes:
    return f"put-{ident:04d}|".encode() * (40 + ident % 50)


def test_posts_racing_puts_never_404_and_newest_metadata_wins(healed) -> None:
    """Invariant (FAULTS 14, invariant 2): while PUTs and POSTs of one name
    race from several threads through the proxy, once the first PUT was
    acknowledged every GET answers 200 with a whole body of one PUT and the
    metadata of that PUT or of one POST, and no POST answers 404. After
    replication every primary holds the same ``.data`` (and ``.meta``, if
    any) on disk and serves the same bytes and metadata; the winning data is
    of an acknowledged PUT that no acknowledged PUT provably followed; the
    metadata is that of a POST newer than the data (no POST provably after
    it was acknowledged) or, without ``.meta``, the PUT's own (no
    acknowledged POST provably followed the PUT). "Provably after" = sent
    after the other was acknowledged: one proxy's timestamps strictly
    increase, so that order is the timestamp order. Writers start each
    round together (a barrier), so the last round decides by a true race."""
    cluster = healed
    client = Client(cluster)
    assert client.request("PUT", "race")[0] in (201, 202)
    st, _, _ = client.request("PUT", "race/o", {"X-Object-Meta-Put": "0"}, _put_body(0))
    assert st == 201
    t0 = time.monotonic()
    ops: list[Op] = [Op("put", 0, t0, t0, st)]
    lock = threading.Lock()
    bad: list[str] = []
    counter = iter(range(1, 10_000))
    stop = threading.Event()

    def writer(kind: str, seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(ROUNDS):
            barrier.wait(30)  # every round starts at once: the races are real
            time.sleep(rnd.random() * (0.005 if kind == "put" else 0.025))  # POSTs often trail a PUT in flight
            with lock:
                ident = next(counter)
            op = Op(kind, ident, time.monotonic())
            try:
                if kind == "put":
                    st, _, _ = client.request("PUT", "race/o", {"X-Object-Meta-Put": str(ident)}, _put_body(ident))
                else:
                    st, _, _ = client.request("POST", "race/o", {"X-Object-Meta-Post": str(ident),
                                                                 "X-Object-Meta-Color": f"c{ident}"})
                op.status = st
            except OSError:
                pass
            op.acked = time.monotonic()
            with lock:
                ops.append(op)
                if op.status == 404:
                    bad.append(f"{kind} {ident} answered 404 for an existing object")

    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            st, hdrs, body = client.request("GET", "race/o")
            reads[0] += 1
            problem = None
            if st != 200:
                problem = f"GET answered {st} during the race"
            elif hashlib.md5(body).hexdigest() != hdrs.get("etag"):
                problem = "GET body does not match its ETag"
            else:
                put_id = int(body.split(b"|", 1)[0].split(b"-")[1])
                meta = _user_meta(hdrs)
                if body != _put_body(put_id):
                    problem = f"torn body {body[:40]!r}"
                elif "x-object-meta-post" in meta:
                    if meta != {"x-object-meta-post": meta["x-object-meta-post"],
                                "x-object-meta-color": f"c{meta['x-object-meta-post']}"}:
                        problem = f"mixed POST metadata {meta}"
                elif meta != {"x-object-meta-put": str(put_id)}:
                    problem = f"metadata {meta} is not PUT {put_id}'s"
            if problem:
                with lock:
                    bad.append(problem)

    kinds = ["put", "put", "post", "post", "post"]
    barrier = threading.Barrier(len(kinds))
    threads = [threading.Thread(target=writer, args=(k, s)) for s, k in enumerate(kinds)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    for t in readers:
        t.join(60)
    assert not bad, bad[:10]
    assert reads[0] > 5, "too few reads raced the writes"
    posts_ok = [o for o in ops if o.kind == "post" and o.ok]
    assert posts_ok, f"no POST was acknowledged: {[(o.kind, o.status) for o in ops]}"

    heal_and_replicate(cluster)
    reps = replicas(cluster, "race", "o")
    assert len({r.files for r in reps}) == 1, [(r.device, r.files) for r in reps]  # G1 on disk
    files = reps[0].files
    assert len(_ext(files, ".data")) == 1 and not _ext(files, ".ts") and len(_ext(files, ".meta")) <= 1, files
    assert all(r.status == 200 for r in reps), [(r.device, r.status) for r in reps]
    assert len({(r.body, tuple(sorted(r.meta.items())), r.timestamp) for r in reps}) == 1

    by_id = {(o.kind, o.ident): o for o in ops}
    put_id = int(reps[0].body.split(b"|", 1)[0].split(b"-")[1])
    winner = by_id[("put", put_id)]
    assert reps[0].body == _put_body(put_id) and winner.status != 404 and (winner.ok or winner.status is None)
    later_puts = [o.ident for o in ops if o.kind == "put" and o.ok and o.sent > winner.acked]
    assert not later_puts, f"PUT {put_id} won over later acknowledged PUTs {later_puts}"
    metas = _ext(files, ".meta")
    if metas:
        data_ts = Timestamp.parse(_ext(files, ".data")[0][:-5])
        assert Timestamp.parse(metas[0][:-5]) > data_ts
        post_id = int(reps[0].meta["x-object-meta-post"])
        post = by_id[("post", post_id)]
        assert reps[0].meta == {"x-object-meta-post": str(post_id), "x-object-meta-color": f"c{post_id}"}
        assert post.ok or post.status is None, f"POST {post_id} answered {post.status} but won"  # G2
        later = [o.ident for o in ops if o.ok and o.sent > post.acked]
        assert not later, f"POST {post_id}'s metadata won over later acknowledged writes {later}"
    else:
        assert reps[0].meta == {"x-object-meta-put": str(put_id)}
        later_posts = [o.ident for o in posts_ok if o.sent > winner.acked]
        assert not later_posts, f"acknowledged POSTs {later_posts} after the winning PUT were lost"
    st, hdrs, body = client.request("GET", "race/o")
    assert st == 200 and body == reps[0].body and _user_meta(hdrs) == reps[0].meta
    check_replicas(cluster, ACCOUNT, [Written("race", "o", reps[0].body, "ok")])  # G1/G3
    check_listing(cluster, "race", {"o"})  # G4


def test_post_merge_rules_converge_through_replication(healed) -> None:
    """Invariant (newest metadata wins; a PUT clears older POST metadata),
    each replica given a different order of the same writes straight through
    the backend API with chosen timestamps: object ``m`` gets PUT t1 on all,
    then node A POST t3 before PUT t2, node B PUT t2 only, node C POST t3
    only -> after replication all hold ``t2.data`` + ``t3.meta`` and serve
    t2's bytes with t3's metadata. Object ``p`` gets PUT t1 + POST t2 on A and
    C, PUT t3 on B only -> all hold ``t3.data`` and no ``.meta``: the older
    POST's metadata is gone everywhere."""
    cluster = healed
    client = Client(cluster)
    assert client.request("PUT", "rules")[0] in (201, 202)
    base = time.time()
    t1, t2, t3 = (Timestamp.from_seconds(base + i) for i in (1, 2, 3))
    ring = _dbs.rings(cluster)["object"]

    def send(dev, part, name, method, ts, meta=None, body=b""):
        hdrs = {"X-Timestamp": ts.internal, **(meta or {})}
        if method == "PUT":
            hdrs["Content-Type"] = "text/plain"
        st, _, _ = _dbs.backend(dev.port, method, f"/{dev.device}/{part}/{ACCOUNT}/rules/{name}", hdrs, body)
        assert st in (201, 202), (method, name, dev.device, st)

    part, (a, b, c) = ring.get_nodes(ACCOUNT, "rules", "m")
    for dev in (a, b, c):
        send(dev, part, "m", "PUT", t1, {"X-Object-Meta-V": "put1"}, b"one")
    send(a, part, "m", "POST", t3, {"X-Object-Meta-V": "post3"})
    send(a, part, "m", "PUT", t2, {"X-Object-Meta-V": "put2"}, b"two")
    send(b, part, "m", "PUT", t2, {"X-Object-Meta-V": "put2"}, b"two")
    send(c, part, "m", "POST", t3, {"X-Object-Meta-V": "post3"})

    part, (a, b, c) = ring.get_nodes(ACCOUNT, "rules", "p")
    for dev in (a, c):
        send(dev, part, "p", "PUT", t1, {"X-Object-Meta-V": "put1"}, b"one")
        send(dev, part, "p", "POST", t2, {"X-Object-Meta-V": "post2"})
    send(b, part, "p", "PUT", t3, {"X-Object-Meta-V": "put3"}, b"three")

    heal_and_replicate(cluster)
    for name, files, body, meta in (("m", (f"{t2.internal}.data", f"{t3.internal}.meta"), b"two", "post3"),
                                    ("p", (f"{t3.internal}.data",), b"three", "put3")):
        for r in replicas(cluster, "rules", name):
            assert r.files == files, (name, r.device, r.files)
            assert (r.status, r.body, r.meta) == (200, body, {"x-object-meta-v": meta}), (name, r)
        st, hdrs, got = client.request("GET", f"rules/{name}")
        assert (st, got, _user_meta(hdrs)) == (200, body, {"x-object-meta-v": meta})
    # the container rows came straight from the backend PUTs; only G4's handoff part applies
    assert not handoff_leftovers(cluster)


# -- (b) a POST reaching two of three replicas ------------------------------------------

def _suffix_hashes(cluster: Cluster, container: str, name: str) -> dict[str, dict[str, str]]:
    part, primaries = _dbs.rings(cluster)["object"].get_nodes(ACCOUNT, container, name)
    out = {}
    for dev in primaries:
        st, body, _ = _dbs.backend(dev.port, "REPLICATE", f"/{dev.device}/{part}")
        assert st == 200, (dev.device, st, body)
        out[dev.device] = json.loads(body)
    return out


def test_post_reaching_two_of_three(healed) -> None:
    """Invariant (newest metadata wins; never a false 404): a POST made while
    one primary is down reaches two of three (202). When that primary
    returns holding the old metadata (an older POST's ``.meta``), a GET with ``X-Newest: true`` answers
    the new metadata, and the suffix hashes of the stale and the fresh
    replicas differ (a metadata-only change is visible to replication).
    After the object replicator runs until quiet every primary holds the same
    ``.data`` + ``.meta`` on disk and serves the new metadata (G1, G4)."""
    cluster = healed
    client = Client(cluster)
    assert client.request("PUT", "half")[0] in (201, 202)
    ring = _dbs.rings(cluster)["object"]
    _, prim = ring.get_nodes(ACCOUNT, "half", "newest")
    down_dev = prim[1].device
    # a second object sharing that primary, left to the replicator alone
    # (the X-Newest read of the first may read-repair it)
    other = next(f"repl{i}" for i in range(200)
                 if down_dev in {d.device for d in ring.get_nodes(ACCOUNT, "half", f"repl{i}")[1]})
    for name in ("newest", other):
        assert client.request("PUT", f"half/{name}", {"X-Object-Meta-Rev": "put"}, name.encode() * 10)[0] == 201
        assert client.request("POST", f"half/{name}", {"X-Object-Meta-Rev": "old"})[0] == 202
    down = _node_of(cluster, down_dev)
    cluster.kill_node(down)
    for name in ("newest", other):
        st, _, _ = client.request("POST", f"half/{name}", {"X-Object-Meta-Rev": "new", "X-Object-Meta-Extra": "x"})
        assert st == 202, (name, st)
    cluster.restart_node(down)

    for name in ("newest", other):
        reps = replicas(cluster, "half", name)
        stale = [r for r in reps if r.device == down_dev]
        fresh = [r for r in reps if r.device != down_dev]
        assert len(stale) == 1 and len(fresh) == 2
        assert stale[0].meta == {"x-object-meta-rev": "old"}, stale
        assert all(r.meta == {"x-object-meta-rev": "new", "x-object-meta-extra": "x"} for r in fresh), fresh
        old_meta, new_meta = _ext(stale[0].files, ".meta"), _ext(fresh[0].files, ".meta")
        assert len(old_meta) == 1 and new_meta > old_meta and fresh[0].files == fresh[1].files, reps
        hashes = _suffix_hashes(cluster, "half", name)
        assert hashes[stale[0].device] != hashes[fresh[0].device] == hashes[fresh[1].device], hashes

    for _ in range(5):  # R = 1 may be served by the stale replica, but never 404
        assert client.request("GET", f"half/{other}")[0] == 200
    st, hdrs, body = client.request("GET", "half/newest", {"X-Newest": "true"})
    assert st == 200 and body == b"newest" * 10
    assert _user_meta(hdrs) == {"x-object-meta-rev": "new", "x-object-meta-extra": "x"}, hdrs

    heal_and_replicate(cluster)
    for name in ("newest", other):
        reps = replicas(cluster, "half", name)
        assert len({r.files for r in reps}) == 1 and len(_ext(reps[0].files, ".meta")) == 1, reps
        for r in reps:
            assert (r.status, r.body) == (200, name.encode() * 10)
            assert r.meta == {"x-object-meta-rev": "new", "x-object-meta-extra": "x"}, r
    check_replicas(cluster, ACCOUNT, [Written("half", n, n.encode() * 10, "ok") for n in ("newest", other)])
    check_listing(cluster, "half", {"newest", other})


# -- (c) a DELETE after a POST, with a primary down -----------------------------------------

def test_later_delete_beats_earlier_post(healed) -> None:
    """Invariant (a later DELETE beats an earlier POST; a deleted object never
    comes back): an object is written and POSTed on all replicas; one
    primary goes down and the object is deleted (204) on the others; the
    primary returns with ``.data`` + ``.meta`` older than the tombstone, and
    a POST made now (newer than the DELETE) reaches only that stale replica,
    so the client is told 404 (absence is proven by the tombstones). After
    replication until quiet every primary holds only the tombstone, newer
    than every ``.meta`` the cluster held before; no primary serves the
    object, the proxy answers 404, the listing no longer has it, and the
    neighbour object is intact (G1-G4)."""
    cluster = healed
    client = Client(cluster)
    assert client.request("PUT", "del")[0] in (201, 202)
    assert client.request("PUT", "del/victim", {"X-Object-Meta-A": "1"}, b"doomed")[0] == 201
    assert client.request("PUT", "del/keeper", {"X-Object-Meta-A": "1"}, b"kept")[0] == 201
    assert client.request("POST", "del/victim", {"X-Object-Meta-A": "2"})[0] == 202
    before = replicas(cluster, "del", "victim")
    assert all(_ext(r.files, ".meta") and r.meta == {"x-object-meta-a": "2"} for r in before), before
    meta_ts = Timestamp.parse(_ext(before[0].files, ".meta")[0][:-5])

    down_dev = before[0].device
    down = _node_of(cluster, down_dev)
    cluster.kill_node(down)
    assert client.request("DELETE", "del/victim")[0] == 204
    cluster.restart_node(down)
    # a POST newer than the DELETE: only the stale replica still has data
    st, _, _ = client.request("POST", "del/victim", {"X-Object-Meta-A": "3"})
    assert st == 404, st
    mid = {r.device: r for r in replicas(cluster, "del", "victim")}
    assert _ext(mid[down_dev].files, ".data"), mid[down_dev]  # it really came back stale
    tomb = [_ext(r.files, ".ts") for d, r in mid.items() if d != down_dev]
    assert all(len(t) == 1 for t in tomb), mid
    tomb_ts = Timestamp.parse(tomb[0][0][:-3])
    assert tomb_ts > meta_ts

    heal_and_replicate(cluster)
    for r in replicas(cluster, "del", "victim"):
        assert r.files == (f"{tomb_ts.internal}.ts",), (r.device, r.files)
        assert r.status == 404 and r.timestamp == tomb_ts.internal, r
    for headers in ({}, {"X-Newest": "true"}):
        assert client.request("GET", "del/victim", headers)[0] == 404
    check_replicas(cluster, ACCOUNT, [Written("del", "keeper", b"kept", "ok")])
    assert all(r.meta == {"x-object-meta-a": "1"} for r in replicas(cluster, "del", "keeper"))
    check_listing(cluster, "del", {"keeper"})


def test_delete_racing_posts_stays_deleted(healed) -> None:
    """Invariant (a DELETE beats a POST whatever the order of their
    timestamps; the tombstone wins over any ``.meta``): for several objects a
    DELETE and POSTs are sent at the same moment from threads. The DELETE
    answers 204 and each POST 202 (it came first somewhere) or 404 (it came
    after the tombstone), never 5xx; after replication until quiet every
    primary holds only the tombstone, none serves the object, the proxy
    answers 404 and the listing is empty."""
    cluster = healed
    client = Client(cluster)
    assert client.request("PUT", "delrace")[0] in (201, 202)
    names = [f"o{i}" for i in range(6)]
    for name in names:
        assert client.request("PUT", f"delrace/{name}", {"X-Object-Meta-A": "put"}, name.encode())[0] == 201
    results: dict[tuple[str, str], int | None] = {}

    def fire(name: str, what: str, barrier: threading.Barrier) -> None:
        barrier.wait(30)
        if what == "post2":  # trail the DELETE by 0-15 ms: some land during its fan-out, some after
            time.sleep(0.003 * names.index(name))
        try:
            if what == "delete":
                st = client.request("DELETE", f"delrace/{name}")[0]
            else:
                st = client.request("POST", f"delrace/{name}", {"X-Object-Meta-A": what})[0]
        except OSError:
            st = None
        results[(name, what)] = st

    for name in names:
        barrier = threading.Barrier(3)
        threads = [threading.Thread(target=fire, args=(name, w, barrier)) for w in ("post1", "delete", "post2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert all(results[(n, "delete")] == 204 for n in names), results
    assert all(results[(n, p)] in (202, 404) for n in names for p in ("post1", "post2")), results

    heal_and_replicate(cluster)
    for name in names:
        reps = replicas(cluster, "delrace", name)
        assert len({r.files for r in reps}) == 1 and len(reps[0].files) == 1, reps
        assert reps[0].files[0].endswith(".ts") and all(r.status == 404 for r in reps), reps
        assert client.request("GET", f"delrace/{name}", {"X-Newest": "true"})[0] == 404
    check_listing(cluster, "delrace", set())


def test_overwrites_never_make_a_replica_answer_404(healed) -> None:
    """Invariant (never a false 404; invariant 2: 404 only when absence is
    proven): one replica, hammered straight through the backend API with
    PUTs and POSTs of one name (increasing timestamps, several threads),
    answers every concurrent GET and HEAD with 200 -- a reader that found
    the index row naming a ``.data`` a racing PUT had just replaced must
    follow it to the new one, not report the object missing. Through the
    proxy such a 404 surfaces when all three replicas lose that race at once."""
    cluster = healed
    client = Client(cluster)
    assert client.request("PUT", "hammer")[0] in (201, 202)
    part, prim = _dbs.rings(cluster)["object"].get_nodes(ACCOUNT, "hammer", "o")
    dev = prim[0]
    path = f"/{dev.device}/{part}/{ACCOUNT}/hammer/o"
    base = time.time()
    ticks = iter(range(1, 1_000_000))
    lock = threading.Lock()
    stop = threading.Event()
    seen: dict[tuple[str, int], int] = {}
    errors: list[str] = []

    def next_ts() -> str:
        with lock:
            return Timestamp.from_seconds(base + next(ticks) * 0.001).internal

    def write(kind: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=30)
        try:
            while not stop.is_set():
                if kind == "PUT":
                    conn.request("PUT", path, body=b"z" * 3000, headers={"X-Timestamp": next_ts(),
                                                                         "Content-Type": "text/plain"})
                else:
                    conn.request("POST", path, headers={"X-Timestamp": next_ts(), "X-Object-Meta-K": "v"})
                resp = conn.getresponse()
                resp.read()
                if resp.status not in (201, 202, 409):
                    errors.append(f"{kind} answered {resp.status}")
        finally:
            conn.close()

    def read(method: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=30)
        try:
            while not stop.is_set():
                conn.request(method, path)
                resp = conn.getresponse()
                resp.read()
                with lock:
                    seen[(method, resp.status)] = seen.get((method, resp.status), 0) + 1
        finally:
            conn.close()

    st, _, _ = _dbs.backend(dev.port, "PUT", path, {"X-Timestamp": next_ts(), "Content-Type": "text/plain"}, b"first")
    assert st == 201
    threads = [threading.Thread(target=write, args=(k,)) for k in ("PUT", "PUT", "PUT", "POST")]
    threads += [threading.Thread(target=read, args=(m,)) for m in ("GET", "GET", "HEAD")]
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert sum(seen.values()) > 50, seen
    assert set(seen) <= {("GET", 200), ("HEAD", 200)}, seen
    # leave the replicas in agreement for the next test's global checks
    heal_and_replicate(cluster)
    assert len({r.files for r in replicas(cluster, "hammer", "o")}) == 1


def test_post_while_a_primary_is_down_reverts_from_the_handoff(healed) -> None:
    """Invariant (newest metadata wins; invariant 1: after replication all N
    primaries hold the same bytes and metadata and no handoff copy is left):
    an object written while one of its primaries is down lands on a handoff;
    a POST made while it is still down updates the two primaries and the
    handoff (202). When the primary returns, replication until quiet reverts
    the handoff's ``.data`` and ``.meta`` to it and empties the handoff; a
    second POST made right after the return, before replication, reaches
    every replica that has the data (the returned one 404s) and is not lost:
    every primary ends with the newest ``.meta`` (G1-G4)."""
    cluster = healed
    client = Client(cluster)
    assert client.request("PUT", "hand")[0] in (201, 202)
    _, prim = _dbs.rings(cluster)["object"].get_nodes(ACCOUNT, "hand", "o")
    down_dev = prim[2].device
    cluster.kill_node(_node_of(cluster, down_dev))
    assert client.request("PUT", "hand/o", {"X-Object-Meta-Rev": "put"}, b"handed off")[0] == 201
    assert client.request("POST", "hand/o", {"X-Object-Meta-Rev": "post1"})[0] == 202
    on_handoff = [f for f in cluster.object_files(ACCOUNT, "hand", "o") if f.parents[4].name not in
                  {d.device for d in prim}]
    assert sorted(f.suffix for f in on_handoff) == [".data", ".meta"], on_handoff
    cluster.restart_node(_node_of(cluster, down_dev))
    assert client.request("POST", "hand/o", {"X-Object-Meta-Rev": "post2"})[0] == 202
    stale = [r for r in replicas(cluster, "hand", "o") if r.device == down_dev]
    assert stale[0].status == 404 and stale[0].files == (), stale

    heal_and_replicate(cluster)
    reps = replicas(cluster, "hand", "o")
    assert len({r.files for r in reps}) == 1 and len(_ext(reps[0].files, ".meta")) == 1, reps
    assert all((r.status, r.body, r.meta) == (200, b"handed off", {"x-object-meta-rev": "post2"}) for r in reps), reps
    check_replicas(cluster, ACCOUNT, [Written("hand", "o", b"handed off", "ok")])
    check_listing(cluster, "hand", {"o"})  # no handoff partition left
