"""The object updater: retries the container updates the object server queued.

When an object PUT/DELETE could not update a container replica (down, slow,
507), the object server queued the row in the drive's LMDB ``async_pending``
sub-database (``storage_node.async_pending``: one entry per object and
target, newest timestamp kept). A pass, per local drive: read the queue
(``pending_updates``), send every entry with the object server's own sender
(``send_update``, up to ``concurrency`` at once), and remove the entry after
a 2xx only if it was not replaced by a newer one meanwhile (``op_remove``
compares the timestamp), so an update is never lost: a failure simply stays
queued for the next pass (the container's newest-wins merge makes a late or
repeated update harmless; invariant 2).

Container -> account: the storage server's own account reporter retries
container count reports from its durable dirty queue every second
(``container_server.run_account_reporter``); the updater also runs one
reporting round over the local drives per pass (``report_dirty``), so after
``--once`` the accounts have what the containers know without waiting.

The updater runs on the node (it opens the drives' LMDB environments, which
LMDB shares safely with the storage server's processes).
"""

from __future__ import annotations

from typing import Any

import trio

from common.log import log_event
from storage_node import async_pending as ap
from storage_node.drive import DriveUnavailable


async def updater_pass(ctx: Any, concurrency: int = 16, limit: int = 10_000) -> dict[str, Any]:
    """One pass over every drive of ``ctx`` (a ``NodeContext``); its counts."""
    st = {"pending": 0, "sent": 0, "failed": 0, "accounts_reported": 0, "drives_unavailable": 0}
    limiter = trio.CapacityLimiter(max(1, concurrency))
    timeout = max(ctx.settings.container_update_timeout, 1.0)

    async def one(drive: str, env: Any, upd: ap.PendingUpdate) -> None:
        async with limiter:
            if await ap.send_update(ctx.http, upd, timeout, "updater"):
                await ctx.committer(drive).commit([ap.op_remove(env, upd.key, upd.timestamp, upd.ctype_timestamp)])
                st["sent"] += 1
            else:
                st["failed"] += 1

    for drive in sorted(ctx.drives):
        try:
            env = await ctx.run(drive, ctx.env, drive)
            pending = await ctx.run(drive, ap.pending_updates, env, limit)
        except (DriveUnavailable, OSError) as exc:
            st["drives_unavailable"] += 1
            log_event(ctx.logger, "updater_drive_unavailable", drive=drive, error=repr(exc))
            continue
        st["pending"] += len(pending)
        async with trio.open_nursery() as nursery:
            for upd in pending:
                nursery.start_soon(one, drive, env, upd)
        st["accounts_reported"] += await _nudge_accounts(ctx, drive)
    st["changed"] = int(st["sent"] > 0)
    return st


async def _nudge_accounts(ctx: Any, drive: str) -> int:
    from storage_node.container_server import report_dirty

    try:
        return int(await report_dirty(ctx, drive))
    except (DriveUnavailable, OSError):
        return 0
