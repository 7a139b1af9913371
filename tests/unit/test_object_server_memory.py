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
