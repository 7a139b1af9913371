"""Container updates after object writes, and the queue of failed ones.

After a PUT or DELETE, and after a POST that set Content-Type (a ``PUT``
row with the object's data timestamp, size and etag plus
``X-Content-Type-Timestamp``), the object server sends the object row to each
container replica named by ``X-Container-Host/Device/Partition`` (aligned,
comma-separated), with ``X-Backend-Type: container``, concurrently and
within ``container_update_timeout``. Each one that fails (timeout, connection
error, non-2xx) is queued in the drive's LMDB sub-database
``async_pending`` for the updater (replicator issue) to retry.

Queue: key ``<object hash>/<host>:<port>/<device>`` (one entry per object and
target: a newer update replaces an older one, an older one never replaces a
newer one, by ``X-Timestamp``; two row PUTs are merged as the container
merges rows, data part and content type each from the newer side, so a
queued POST's content type survives a queued PUT and vice versa), value
``PendingUpdate`` JSON. The updater calls ``pending_updates`` and, after a
2xx, ``op_remove(key, timestamp, ctype_timestamp)`` (removes only if not
replaced meanwhile). ``send_update`` is the one sender,
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
    headers: dict[str, str]  # X-Timestamp, X-Size, X-Content-Type, X-Etag, X-Backend-Type,
    #                          X-Content-Type-Timestamp (after a POST)
    object_hash: str

    @property
    def timestamp(self) -> Timestamp:
        return Timestamp.parse(self.headers["X-Timestamp"])

    @property
    def ctype_timestamp(self) -> Timestamp:
        """When the row's content type was set (the POST's, else the data's)."""
        cts = self.headers.get("X-Content-Type-Timestamp")
        return max(self.timestamp, Timestamp.parse(cts)) if cts else self.timestamp

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
        new_val = val
        if old:
            prev = PendingUpdate(**json.loads(bytes(old)))
            merged = merge_pending(prev, upd)
            if merged is prev:
                return
            if merged is not upd:
                new_val = json.dumps(asdict(merged), separators=(",", ":")).encode()
        txn.put(upd.key, new_val, db=handle)

    return op


def merge_pending(prev: PendingUpdate, upd: PendingUpdate) -> PendingUpdate:
    """The update to keep for one (object, target): the newer by
    ``X-Timestamp``; two row PUTs of the same data timestamp or different
    ones are merged part by part (R1 of ``rows_core``), keeping the newer
    content type with its timestamp."""
    if prev.method == "PUT" and upd.method == "PUT":
        data = upd if upd.timestamp > prev.timestamp else prev
        ctype = upd if upd.ctype_timestamp > prev.ctype_timestamp else prev
        if data is ctype:
            return data
        headers = dict(data.headers)
        headers["X-Content-Type"] = ctype.headers.get("X-Content-Type", "")
        headers["X-Content-Type-Timestamp"] = ctype.ctype_timestamp.internal
        return PendingUpdate(data.method, data.host, data.port, data.device, data.partition,
                             data.name, headers, data.object_hash)
    return upd if upd.timestamp > prev.timestamp else prev


def op_remove(env: lmdb.Environment, key: bytes, ts: Timestamp, ctype_ts: Timestamp | None = None) -> Op:
    """Remove the queued update if it is still the one sent (same data and,
    when given, content-type timestamps)."""
    handle = db(env)

    def op(txn: lmdb.Transaction) -> None:
        old = txn.get(key, db=handle)
        if not old:
            return
        prev = PendingUpdate(**json.loads(bytes(old)))
        if prev.timestamp == ts and (ctype_ts is None or prev.ctype_timestamp == ctype_ts):
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
        with trio.move_on_after(timeout):  # the one deadline (a timeout is not an error here)
            resp = await http.request(upd.method, upd.host, upd.port, quote_path(upd.path), headers=headers)
            return 200 <= resp.status < 300
    except Exception:  # network trouble or the client's own errors: queue it
        return False
    return False


def build_updates(method: str, headers: Any, name: str, object_hash: str, ts: Timestamp,
                  size: int = 0, content_type: str = "", etag: str = "",
                  ctype_ts: Timestamp | None = None) -> list[PendingUpdate]:
    tg = targets(headers)
    if isinstance(tg, str):
        return []
    row: dict[str, str] = {"X-Timestamp": ts.internal, "X-Backend-Type": "container"}
    if method == "PUT":
        row.update({"X-Size": str(size), "X-Content-Type": content_type, "X-Etag": etag})
        if ctype_ts is not None and ctype_ts > ts:
            row["X-Content-Type-Timestamp"] = ctype_ts.internal
    return [PendingUpdate(method, h, p, d, part, name, row, object_hash) for h, p, d, part in tg]


async def update_containers(ctx: NodeContext, headers: Any, drive: str, name: str, name_hash: str, method: str,
                            ts: Timestamp, size: int = 0, ctype: str = "", etag: str = "",
                            ctype_ts: Timestamp | None = None) -> int:
    """Send the object row to every container target in ``headers``
    concurrently; queue the failures on ``drive``. Returns how many queued.
    ``ctype_ts``: a POST's timestamp when it set the content type."""
    updates = build_updates(method, headers, name, name_hash, ts, size, ctype, etag, ctype_ts)
    if not updates:
        return 0
    failed: list[PendingUpdate] = []
    trans_id = headers.get("x-trans-id") or ""
    timeout = ctx.settings.container_update_timeout

    async def one(u: PendingUpdate) -> None:
        if not await send_update(ctx.http, u, timeout, trans_id):
            failed.append(u)

    if len(updates) == 1:  # the usual case (one container replica per object replica): no nursery
        await one(updates[0])
    else:
        async with trio.open_nursery() as nursery:
            for u in updates:
                nursery.start_soon(one, u)
    if failed:
        env = await ctx.run(drive, ctx.env, drive)
        await ctx.committer(drive).commit([op_enqueue(env, u) for u in failed])
        log_event(ctx.logger, "container_update_queued", trans_id=trans_id, count=len(failed), name=name)
    return len(failed)


async def update_after_post(ctx: NodeContext, headers: Any, drive: str, name: str, name_hash: str,
                            ts: Timestamp, rec: Any) -> int:
    """After a POST that set Content-Type: send the row with the object's data
    timestamp, size and etag (``rec``, the settled record) and the new content
    type with ``X-Content-Type-Timestamp: ts`` (R1 of ``rows_core``). Nothing
    when the POST set no content type, or a newer POST already won the
    ``.meta`` (it sends its own row)."""
    if not headers.get("content-type") or rec.data_ts is None or rec.meta_ts != ts:
        return 0
    return await update_containers(ctx, headers, drive, name, name_hash, "PUT", rec.data_ts, rec.size,
                                   rec.headers.get("content-type", ""), rec.etag, ts)
