"""The object expirer: deletes objects whose ``X-Delete-At`` has passed.

Design (no hidden ``.expiring_objects`` account): every object replica's
index row carries its effective headers, ``x-delete-at`` among them, so the
expirer of each node scans its own drives' LMDB index (read-only: rows of
every partition) and finds every expiring object that has a replica on the
node. Every object with a replica somewhere is therefore found by at least
one node's expirer, even with some nodes down (a node that was away finds its
own on return). For each live row with ``x-delete-at <= now`` it sends,
directly to every primary of the object ring (plus the local drive when it
holds a handoff copy), a ``DELETE`` with:

- ``X-Timestamp`` = the ``X-Delete-At`` time, as Swift's expirer: a PUT or
  POST made after that moment is newer and wins (409 for the DELETE), so an
  object overwritten after it expired is never deleted (invariant 2);
- ``X-If-Delete-At`` = the same value: the object server answers 412 unless
  the object still has exactly that ``X-Delete-At`` (a POST that changed or
  removed it keeps the object);
- the container update headers of the container ring, so the listing loses
  the row (a failed update is queued by the object server for the updater).

204, 404 (already gone), 409 and 412 are final answers; anything else (down,
507, timeout) is retried on the next pass because the row is still live.
Several nodes may delete one object concurrently: the deletes carry the same
timestamp and are idempotent. Expired objects already read as 404 before the
expirer runs (the object server checks ``X-Delete-At`` on every read).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import trio

from common.http import quote_path
from common.log import log_event
from common.timestamp import Timestamp
from storage_node.drive import DriveUnavailable
from storage_node.object_core import ObjectRecord

FINAL = (204, 404, 409, 412)


def expired_rows(ctx: Any, drive: str, now: float) -> list[ObjectRecord]:
    """(thread) Live rows of the drive whose ``x-delete-at`` is ``<= now``."""
    idx = ctx.index(drive)
    out = []
    for part in idx.partitions():
        for _hash, rec in idx.rows(part):
            if rec.exists and rec.expired(now):
                out.append(rec)
    return out


async def expirer_pass(ctx: Any, object_ring: Any, container_ring: Any, node: tuple[str, int],
                       concurrency: int = 16, timeout: float = 10.0,
                       clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """One pass over the local drives of ``ctx`` (a ``NodeContext``); its counts."""
    st = {"expired_found": 0, "deleted": 0, "replicas_deleted": 0, "retry": 0, "drives_unavailable": 0}
    now = clock()
    object_ring.reload_if_changed()
    container_ring.reload_if_changed()
    limiter = trio.CapacityLimiter(max(1, concurrency))

    async def delete_one(drive: str, rec: ObjectRecord) -> None:
        _, account, container, obj = rec.name.split("/", 3)
        delete_at = rec.delete_at()
        assert delete_at is not None
        part, primaries = object_ring.get_nodes(account, container, obj)
        targets = [(d.address, d.port, d.device) for d in primaries]
        if (node[0], node[1], drive) not in targets:
            targets.append((node[0], node[1], drive))  # our handoff copy too
        cpart, cnodes = container_ring.get_nodes(account, container)
        headers = {"X-Timestamp": Timestamp.from_seconds(delete_at).internal,
                   "X-If-Delete-At": str(delete_at), "X-Trans-Id": "expirer",
                   "X-Container-Partition": str(cpart),
                   "X-Container-Host": ",".join(f"{d.address}:{d.port}" for d in cnodes),
                   "X-Container-Device": ",".join(d.device for d in cnodes)}
        done = 0
        async with limiter:
            for host, port, dev in targets:
                try:
                    resp = await ctx.http.request("DELETE", host, port, quote_path(f"/{dev}/{part}{rec.name}"),
                                                  headers=headers, timeout=timeout)
                    status = resp.status
                except Exception as exc:  # down or slow: retried next pass
                    status = 599
                    log_event(ctx.logger, "expirer_delete_failed", name=rec.name, target=f"{host}:{port}/{dev}",
                              error=repr(exc))
                if status in FINAL:
                    done += 1
                    st["replicas_deleted"] += int(status == 204)
        if done == len(targets):
            st["deleted"] += 1
        else:
            st["retry"] += 1

    for drive in sorted(ctx.drives):
        try:
            rows = await ctx.run(drive, expired_rows, ctx, drive, now)
        except (DriveUnavailable, OSError) as exc:
            st["drives_unavailable"] += 1
            log_event(ctx.logger, "expirer_drive_unavailable", drive=drive, error=repr(exc))
            continue
        st["expired_found"] += len(rows)
        async with trio.open_nursery() as nursery:
            for rec in rows:
                nursery.start_soon(delete_one, drive, rec)
    st["changed"] = int(st["replicas_deleted"] > 0)
    return st
