"""The object auditor: re-checks every replica's bytes at a bounded rate.

One pass, per drive and partition: ``rehash_from_disk`` (the directory walk
that reconciles the index with the files: lost files drop their rows, stray
files gain rows, old tombstones are reclaimed), then every live ``.data``
file is read chunk by chunk and checked against its chunk checksums; a corrupt file is
quarantined to ``<drive>/quarantined/objects/<hash>`` and its row dropped, so
the suffix hash changes and the replicator restores it (invariant 3). Reads
are paced to ``bytes_per_second`` (0 = unpaced). The bound on how long a
file lost behind the index goes unnoticed is one auditor pass (or the next
GET/HEAD of it, or the next ``REPLICATE`` of its suffix).

Runs as a task inside the storage server (``[storage]
auditor_bytes_per_second > 0``) or as ``ringstack serve auditor``.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from common.bodyhash import n_chunks
from common.log import log_event
from storage_node.context import NodeContext
from storage_node.diskfile import ObjectLocation, ObjectReader
from storage_node.drive import DiskDrives, DriveUnavailable
from storage_node.integrity import CorruptData
from storage_node.object_core import ObjectRecord
from storage_node.object_server import quarantine_object
from storage_node.paths import BackendPath
from storage_node.replicate import rehash_from_disk


@dataclass
class AuditStats:
    passes: int = 0
    objects: int = 0
    bytes: int = 0
    quarantined: int = 0
    errors: int = 0
    drives_unavailable: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _Pacer:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = trio.current_time()
        self.done = 0

    async def account(self, n: int) -> None:
        self.done += n
        if self.rate > 0:
            due = self.start + self.done / self.rate
            await trio.sleep_until(max(due, trio.current_time()))


async def audit_pass(ctx: NodeContext, bytes_per_second: float, stats: AuditStats | None = None,
                     only: set[str] | None = None) -> AuditStats:
    stats = stats or AuditStats()
    pacer = _Pacer(bytes_per_second)
    for drive in sorted(only if only is not None else ctx.drives):
        try:
            await _audit_drive(ctx, drive, pacer, stats)
        except DriveUnavailable:
            stats.drives_unavailable += 1
    stats.passes += 1
    log_event(ctx.logger, "audit_pass", **stats.as_dict())
    return stats


async def _audit_drive(ctx: NodeContext, drive: str, pacer: _Pacer, stats: AuditStats) -> None:
    def partitions() -> list[int]:
        root = ctx.check_drive(drive)
        on_disk = {int(p) for p in ctx.drive_layer.listdir(root / "objects") if p.isdigit()}
        return sorted(on_disk | set(ctx.index(drive).partitions()))

    await ctx.run(drive, lambda: ctx.drive_layer.clean_temp(ctx.check_drive(drive)))
    for part in await ctx.run(drive, partitions):
        seen = await ctx.run(drive, rehash_from_disk, ctx, drive, part, None)
        root = ctx.root(drive)
        for rows in seen.values():
            for h, rec in rows:
                if not rec.exists:
                    continue
                loc = ObjectLocation(root, part, h, rec.name)
                ok = await ctx.run(drive, _check_one, ctx, drive, loc, rec)
                stats.objects += 1
                stats.bytes += rec.size
                if ok is False:
                    stats.quarantined += 1
                elif ok is None:
                    stats.errors += 1
                await pacer.account(rec.size)


def _check_one(ctx: NodeContext, drive: str, loc: ObjectLocation, rec: ObjectRecord) -> bool | None:
    """(thread) True: good; False: quarantined; None: vanished meanwhile."""

    assert rec.data_file
    try:
        reader = ObjectReader(ctx.drive_layer, loc.dir / rec.data_file, rec, full_check=True)
        try:
            for i in range(n_chunks(rec.size)):
                reader.chunk(i)
        finally:
            reader.close()
    except FileNotFoundError:
        return None
    except CorruptData:
        quarantine_object(ctx, BackendPath(drive, loc.partition), loc)
        return False
    return True


def _claim(root: Path) -> int | None:
    """(thread) An exclusive non-blocking ``flock`` on ``<drive>/locks/auditor``
    so that with ``--workers N`` one process audits each drive; the fd is
    kept open (the lock held) for the life of the process. None: taken."""
    try:
        locks = root / "locks"
        locks.mkdir(exist_ok=True)
        fd = os.open(locks / "auditor", os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


async def run_auditor(ctx: NodeContext, stats: AuditStats | None = None) -> None:
    """Audit forever: a pass, then ``auditor_interval`` seconds of rest. Only
    drives this process holds the auditor lock of (retried every pass)."""
    stats = stats or AuditStats()
    claimed: set[str] = set()
    while True:
        for d in set(ctx.drives) - claimed:
            root = ctx.drives[d]
            if not isinstance(ctx.drive_layer, DiskDrives) or await trio.to_thread.run_sync(_claim, root) is not None:
                claimed.add(d)
        if claimed:
            await audit_pass(ctx, ctx.settings.auditor_bytes_per_second, stats, only=claimed)
        await trio.sleep(ctx.settings.auditor_interval)
