"""The real storage server in-process on the in-memory drive layer (what the
simulation will use): object round trip, full drive -> 507 with nothing left
behind, deletes still work, the other drive keeps serving (FAULTS 11)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from common.config import ClusterConfig
from common.http import HTTPClient
from storage_node.context import StorageSettings
from storage_node.drive import MemoryDrives
from storage_node.server import serve_storage


async def _chunks(data: bytes, step: int = 65536):
    for i in range(0, len(data), step):
        yield data[i:i + step]


async def test_memory_drives_full_drive_answers_507_and_deletes_still_work(tmp_path, nursery):
    mem = MemoryDrives(capacity=300_000)
    d1, d2 = Path("/mem/d1"), Path("/mem/d2")
    mem.mkdir(d1)
    mem.mkdir(d2)
    settings = StorageSettings(index_root=str(tmp_path / "index"), reserve_bytes=10_000)
    port = await nursery.start(partial(serve_storage, ClusterConfig(hash_secret="mem"), drives={"d1": d1, "d2": d2},
                                       drive_layer=mem, settings=settings, port=0))
    client = HTTPClient()

    async def call(method, path, ts=None, body=b"", **headers):
        if ts is not None:
            headers["X-Timestamp"] = f"{1_700_000_000 + ts:.5f}"
        return await client.request(method, "127.0.0.1", port, path, headers=headers, body=body, timeout=10)

    r = await call("PUT", "/d1/3/a/c/small", 1, b"x" * 100_000, **{"Content-Length": "100000"})
    assert r.status == 201
    r = await call("GET", "/d1/3/a/c/small")
    assert r.status == 200 and r.body == b"x" * 100_000
    # the reserve refuses a PUT that would not fit, before writing anything
    r = await call("PUT", "/d1/3/a/c/big", 2, b"y" * 250_000, **{"Content-Length": "250000"})
    assert r.status == 507 and b"full" in r.body
    # a chunked body runs into ENOSPC part way: 507, temp file removed
    r = await call("PUT", "/d1/3/a/c/chunked", 3, _chunks(b"z" * 400_000))
    assert r.status == 507
    assert mem.listdir(d1 / "tmp") == []
    assert (await call("GET", "/d1/3/a/c/chunked")).status == 404
    # deletes still work on the full drive; the other drive serves
    assert (await call("DELETE", "/d1/3/a/c/small", 4)).status == 204
    assert (await call("GET", "/d1/3/a/c/small")).status == 404
    assert (await call("PUT", "/d2/3/a/c/o", 5, b"ok", **{"Content-Length": "2"})).status == 201
    mem.missing.add(d2)
    assert (await call("GET", "/d2/3/a/c/o")).status == 507
    assert (await call("HEAD", "/d1/3/a/c/small")).status == 404


async def test_replication_client_pushes_suffixes_and_drops(tmp_path, nursery):
    from storage_node.replication_client import (
        Endpoint,
        drop_partition,
        list_objects,
        list_partitions,
        push_suffixes,
        suffix_hashes,
    )

    mem = MemoryDrives()
    d1, d2 = Path("/mem/r1"), Path("/mem/r2")
    mem.mkdir(d1)
    mem.mkdir(d2)
    settings = StorageSettings(index_root=str(tmp_path / "index"))
    port = await nursery.start(partial(serve_storage, ClusterConfig(hash_secret="rep"), drives={"d1": d1, "d2": d2},
                                       drive_layer=mem, settings=settings, port=0))
    http = HTTPClient()
    big = bytes(range(256)) * (10 * 1024)  # 2.5 MiB: three integrity chunks
    for i, body in enumerate([b"one", b"two", big]):
        r = await http.request("PUT", "127.0.0.1", port, f"/d1/7/a/c/o{i}",
                               headers={"X-Timestamp": f"{1_700_000_000 + i}.00000",
                                        "Content-Length": str(len(body))}, body=body)
        assert r.status == 201
    await http.request("DELETE", "127.0.0.1", port, "/d1/7/a/c/o0", headers={"X-Timestamp": "1700000009.00000"})
    src, dst = Endpoint("127.0.0.1", port, "d1", 7), Endpoint("127.0.0.1", port, "d2", 7)
    want = await suffix_hashes(http, src)
    assert len(want) >= 1
    assert await push_suffixes(http, src, dst) == {"complete": True, "files": 3, "rejected": 0}
    assert await suffix_hashes(http, dst) == want
    assert sorted(o["name"] for o in await list_objects(http, dst)) == ["/a/c/o0", "/a/c/o1", "/a/c/o2"]
    assert await list_partitions(http, "127.0.0.1", port, "d2") == [7]
    r = await http.request("GET", "127.0.0.1", port, "/d2/7/a/c/o2")
    assert r.status == 200 and r.body == big
    # a corrupt replica is refused by the receiver, never stored
    path = next(p for p in mem.files if p.name.endswith(".data") and d1 in p.parents and mem.files[p][:3] == b"two")
    mem.files[path] = b"twX" + mem.files[path][3:]
    r = await http.request("DELETE", "127.0.0.1", port, "/d2/7/a/c/o1", headers={"X-Timestamp": "1700000000.50000"})
    assert r.status == 409  # d2 already holds o1 at a newer timestamp
    other = Endpoint("127.0.0.1", port, "d2", 8)
    assert (await push_suffixes(http, src, other))["rejected"] == 1
    # drop only while the hashes are what the new owner confirmed
    assert not await drop_partition(http, src, {"fff": "x"})
    assert await drop_partition(http, src, await suffix_hashes(http, src, list(want)))
    assert await suffix_hashes(http, src) == {}
