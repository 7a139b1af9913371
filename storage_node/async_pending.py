"""Container updates after object writes, and the queue of failed ones.

After a PUT or DELETE the object server sends the object row to each
container replica named by ``X-Container-Host/Device/Partition`` (aligned,
comma-separated), with ``X-Backend-Type: container``, concurrently and
within ``container_update_timeout``. Each one that fails (timeout, connection
error, non-2xx) is queued in the drive's LMDB sub-database
``async_pending`` for the updater (replicator issue) to retry.

Queue: key ``<object hash>/<host>:<port>/<device>`` (one entry per object and
target: a newer update replaces an older one, an older one never replaces a
newer one, by ``X-Timestamp``), value ``PendingUpdate`` JSON. The updater
calls ``pending_updates`` and, after a 2xx, ``op_remove(key, timestamp)``
(removes only if not replaced meanwhile). ``send_update`` is the one sender,
shared with the updater.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import lmdb
import trio

from common.http import HTTPClient, quote_path
from common.log import log_event
from common.timestamp import Timestamp
from storage_node.index import Op, open_db

if TYPE_CHECKING:
    from storage_node.context import NodeContext

DB_NAME = b"async_pending"


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    method: str  # PUT or DELETE
    host: str
    port: int
    device: str
    partition: int
    name: str  # /account/container/object (decoded)
    headers: dict[str, str]  # X-Timestamp, X-Size, X-Content-Type, X-Etag, X-Backend-Type
    object_hash: str

    @property
    def timestamp(self) -> Timestamp:
        return Timestamp.parse(self.headers["X-Timestamp"])

    @property
    def key(self) -> bytes:
        return f"{self.object_hash}/{self.host}:{self.port}/{self.device}".encode()

    @property
    def path(self) -> str:
        return f"/{self.device}/{self.partition}{self.name}"


def targets(headers: Any) -> list[tuple[str, int, str, int]] | str:
    """``[(host, port, device, partition)]`` from the backend headers, or a
    string saying why they are malformed."""
    hosts = [h.strip() for h in (headers.get("x-container-host") or "").split(",") if h.strip()]
    if not hosts:
        return []
    devices = [d.strip() for d in (headers.get("x-container-device") or "").split(",")]
    part = (headers.get("x-container-partition") or "").strip()
    if len(devices) != len(hosts) or not part.isdigit():
        return "X-Container-Host, X-Container-Device and X-Container-Partition do not line up"
    out = []
    for h, d in zip(hosts, devices, strict=True):
        host, _, port = h.rpartition(":")
        if not host or not port.isdigit() or not d:
            return f"bad container target {h!r}/{d!r}"
        out.append((host, int(port), d, int(part)))
    return out


def db(env: lmdb.Environment) -> Any:
    return open_db(env, DB_NAME)


def op_enqueue(env: lmdb.Environment, upd: PendingUpdate) -> Op:
    handle = db(env)
    val = json.dumps(asdict(upd), separators=(",", ":")).encode()

    def op(txn: lmdb.Transaction) -> None:
        old = txn.get(upd.key, db=handle)
        if old:
            prev = PendingUpdate(**json.loads(bytes(old)))
            if prev.timestamp >= upd.timestamp:
                return
        txn.put(upd.key, val, db=handle)

    return op


def op_remove(env: lmdb.Environment, key: bytes, ts: Timestamp) -> Op:
    handle = db(env)

    def op(txn: lmdb.Transaction) -> None:
        old = txn.get(key, db=handle)
        if old and PendingUpdate(**json.loads(bytes(old))).timestamp == ts:
            txn.delete(key, db=handle)

    return op


def pending_updates(env: lmdb.Environment, limit: int = 1000) -> list[PendingUpdate]:
    """(thread) Up to ``limit`` queued updates, in key order."""
    handle = db(env)
    out = []
    with env.begin(db=handle) as txn:
        for _, v in txn.cursor():
            out.append(PendingUpdate(**json.loads(v)))
            if len(out) >= limit:
                break
    return out


async def send_update(http: HTTPClient, upd: PendingUpdate, timeout: float, trans_id: str = "") -> bool:
    """Send one object row; True on 2xx. Never raises for network trouble."""
    headers = dict(upd.headers)
    if trans_id:
        headers["X-Trans-Id"] = trans_id
    try:
        with trio.move_on_after(timeout):
            resp = await http.request(upd.method, upd.host, upd.port, quote_path(upd.path),
                                      headers=headers, timeout=timeout)
            return 200 <= resp.status < 300
    except Exception:  # network trouble or the client's own errors: queue it
        return False
    return False


def build_updates(method: str, headers: Any, name: str, object_hash: str, ts: Timestamp,
                  size: int = 0, content_type: str = "", etag: str = "") -> list[PendingUpdate]:
    tg = targets(headers)
    if isinstance(tg, str):
        return []
    row: dict[str, str] = {"X-Timestamp": ts.internal, "X-Backend-Type": "container"}
    if method == "PUT":
        row.update({"X-Size": str(size), "X-Content-Type": content_type, "X-Etag": etag})
    return [PendingUpdate(method, h, p, d, part, name, row, object_hash) for h, p, d, part in tg]


async def update_containers(ctx: NodeContext, headers: Any, drive: str, name: str, name_hash: str, method: str,
                            ts: Timestamp, size: int = 0, ctype: str = "", etag: str = "") -> int:
    """Send the object row to every container target in ``headers``
    concurrently; queue the failures on ``drive``. Returns how many queued."""
    updates = build_updates(method, headers, name, name_hash, ts, size, ctype, etag)
    if not updates:
        return 0
    failed: list[PendingUpdate] = []
    trans_id = headers.get("x-trans-id") or ""
    timeout = ctx.settings.container_update_timeout

    async def one(u: PendingUpdate) -> None:
        if not await send_update(ctx.http, u, timeout, trans_id):
            failed.append(u)

    async with trio.open_nursery() as nursery:
        for u in updates:
            nursery.start_soon(one, u)
    if failed:
        env = await ctx.run(drive, ctx.env, drive)
        await ctx.committer(drive).commit([op_enqueue(env, u) for u in failed])
        log_event(ctx.logger, "container_update_queued", trans_id=trans_id, count=len(failed), name=name)
    return len(failed)
