"""Replication verbs on ``/<drive>/<partition>`` (BACKEND_API.md "Replication").

- ``REPLICATE /d/p`` -> ``{suffix: hash}`` from the index (no directory walk).
  ``REPLICATE /d/p/s1-s2`` first rehashes those suffixes *from disk* (files
  lost or added behind the index's back are noticed, tombstones older than
  ``reclaim_age`` are reclaimed, by the clock, never earlier: invariant 2).
- ``SUFFIXES /d/p?suffixes=s1-s2`` (all when absent) -> a ``sync_core``
  stream of every live file of those suffixes.
- ``MERGE /d/p`` with a ``sync_core`` stream body -> each file is verified
  (chunk checksums against its trailer), written durably, settled by the same
  winner rules as a PUT, and indexed -> JSON ``{"files", "rejected",
  "complete"}``. Older files lose to newer ones as usual.
- ``OBJECTS /d/p`` -> JSON list of the partition's rows; ``PARTITIONS /d``
  -> JSON list of the object partitions present on the drive.
- ``DROP /d/p`` with JSON body ``{suffix: hash}`` (what the replicator saw
  confirmed by every new owner) -> under the exclusive partition lock, rehash
  from disk; if the hashes still equal the body, delete the partition's files
  and rows (204), else 409 with the current hashes: nothing is deleted that
  was written after the sync was confirmed (invariant 3).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import trio

from common.bodyhash import CHUNK_SIZE, ChunkHasher, root_hash
from common.http import ClientDisconnect, Request, Response
from common.log import log_event
from storage_node.context import NodeContext
from storage_node.diskfile import ObjectLocation, settle
from storage_node.drive import DriveLayer, ReadHandle, TempFile
from storage_node.index import DriveIndex, Op, _hash_rows
from storage_node.integrity import FOOTER, CorruptData, decode_footer, decode_trailer
from storage_node.object_core import DATA, ObjectRecord, file_timestamp
from storage_node.object_server import quarantine_object
from storage_node.paths import BackendPath, BadPath, object_dir, parse_suffixes
from storage_node.sync_core import (
    END,
    MAGIC,
    FileData,
    FileEnd,
    FileStart,
    StreamEnd,
    SyncDecoder,
    SyncError,
    file_header,
)

COMMIT_EVERY = 256


def _json(status: int, obj: object) -> Response:
    return Response(status, {"Content-Type": "application/json"}, json.dumps(obj, sort_keys=True).encode())


_RINGS: dict[str, Any] = {}


def ring_mismatch(req: Request, ctx: NodeContext) -> Response | None:
    """409 when the request names a ring version (``X-Backend-Ring-Version``,
    the sender's object ring checksum in hex) other than this node's: two
    nodes on different ring versions never confirm each other's handoff
    revert (replicator/object_core.py; FAULTS.md 9). No header: no check."""
    want = req.headers.get("x-backend-ring-version")
    if not want or not ctx.ring_dir:
        return None
    from ring.lookup import Ring
    from ring.ringfile import RingFileError

    path = os.path.join(ctx.ring_dir, "object.ring")
    try:
        ring = _RINGS.get(path)
        if ring is None:
            ring = _RINGS.setdefault(path, Ring(path, ctx.hash_secret, reload_interval=1.0))
        else:
            ring.reload_if_changed()  # one stat
    except (RingFileError, OSError) as exc:
        return Response.text(409, f"ring version unknown here: {exc}")
    have = ring.checksum.hex()
    if have == want:
        return None
    return Response.text(409, f"ring version mismatch: this node has {have}, the request {want}",
                         {"X-Backend-Ring-Version": have})


async def handle(req: Request, ctx: NodeContext, bp: BackendPath) -> Response:
    mismatch = ring_mismatch(req, ctx)
    if mismatch is not None:
        return mismatch
    if req.method == "REPLICATE":
        suffixes = parse_suffixes(bp.account or "")

        def work() -> dict[str, str]:
            ctx.check_drive(bp.drive)
            if suffixes:
                rehash_from_disk(ctx, bp.drive, bp.partition, suffixes)
            return ctx.index(bp.drive).suffix_hashes(bp.partition, tuple(suffixes))

        return _json(200, await ctx.run(bp.drive, work))
    if req.method == "SUFFIXES":
        return await _send(req, ctx, bp)
    if req.method == "MERGE":
        return await _merge(req, ctx, bp)
    if req.method == "OBJECTS":
        def rows() -> list[dict[str, object]]:
            ctx.check_drive(bp.drive)
            return [{"hash": h, **r.to_json()} for h, r in ctx.index(bp.drive).rows(bp.partition)]

        return _json(200, await ctx.run(bp.drive, rows))
    if req.method == "DROP":
        try:
            expected = json.loads(await req.read(1 << 20) or b"{}")
        except ValueError as exc:
            raise BadPath(f"DROP body must be JSON {{suffix: hash}}: {exc}") from exc
        ok, current = await ctx.run(bp.drive, drop_partition, ctx, bp.drive, bp.partition, expected)
        return Response(204) if ok else _json(409, current)
    return Response.text(405, f"{req.method} not supported here")


async def partitions(ctx: NodeContext, drive: str) -> Response:
    """``PARTITIONS /<drive>`` -> JSON list of the object partitions present
    on the drive (index rows or directories), for the replicator."""
    if not drive or "/" in drive:
        raise BadPath("PARTITIONS takes /<drive>")

    def work() -> list[int]:
        root = ctx.check_drive(drive)
        on_disk = {int(p) for p in ctx.drive_layer.listdir(root / "objects") if p.isdigit()}
        return sorted(on_disk | set(ctx.index(drive).partitions()))

    return _json(200, await ctx.run(drive, work))


# -- rehash / drop (thread side) ---------------------------------------------------

def rehash_from_disk(ctx: NodeContext, drive: str, part: int, suffixes: list[str] | None,
                     ) -> dict[str, list[tuple[str, ObjectRecord]]]:
    """(thread) Settle every hash dir of ``suffixes`` (all when None) from
    its files, reclaim old tombstones, fix the rows; returns what is on disk."""
    root = ctx.check_drive(drive)
    drives, idx = ctx.drive_layer, ctx.index(drive)
    part_dir = root / "objects" / str(part)
    if suffixes is None:
        suffixes = sorted(s for s in drives.listdir(part_dir) if len(s) == 3)
    now = ctx.clock()
    seen: dict[str, list[tuple[str, ObjectRecord]]] = {}
    ops: list[Op] = []
    for s in suffixes:
        on_disk = set(drives.listdir(part_dir / s))
        for h in sorted(on_disk):
            loc = ObjectLocation(root, part, h, "")
            with drives.lock_dir(loc.dir):
                try:
                    rec = settle(drives, loc)
                except CorruptData:
                    quarantine_object(ctx, BackendPath(drive, part), loc)
                    continue
                if rec.tomb_ts and now - rec.tomb_ts.seconds > ctx.settings.reclaim_age:
                    drives.unlink(loc.dir / rec.files[0])  # invariant 2: only past reclaim_age
                    ops.append(idx.op_delete_row_if(part, h, rec.files))
                    drives.remove_empty_dirs(loc.dir, part_dir)
                    continue
                held = None
                if not rec.files:  # every file gone behind the index's back
                    held = idx.get(part, h)
                    # under the dir lock: a writer holding it keeps its directory
                    drives.remove_empty_dirs(loc.dir, part_dir)
            if rec.files:
                ops.append(idx.op_put_row(part, h, rec))
                seen.setdefault(s, []).append((h, rec))
            elif held is not None:
                ops.append(idx.op_delete_row_if(part, h, held.files))
        for h, rec in idx.rows(part, s):
            if h not in on_disk:
                ops.append(idx.op_delete_row_if(part, h, rec.files))
    idx.apply(ops)
    return seen


def drop_partition(ctx: NodeContext, drive: str, part: int, expected: dict[str, str]) -> tuple[bool, dict[str, str]]:
    """(thread) Delete the partition if its on-disk hashes equal ``expected``."""
    root = ctx.check_drive(drive)
    drives, idx = ctx.drive_layer, ctx.index(drive)
    with drives.lock_partition(root, part, False):
        seen = rehash_from_disk(ctx, drive, part, None)
        current = {s: _hash_rows(rows) for s, rows in seen.items() if rows}
        if current != expected:
            return False, current
        part_dir = root / "objects" / str(part)
        if drives.listdir(part_dir):
            trash = root / "tmp" / f"drop-{os.getpid()}-{uuid.uuid4().hex}"
            drives.move_dir(part_dir, trash)
            _remove_tree(drives, trash)
        idx.apply([idx.op_delete_row(part, h) for h, _ in idx.rows(part)])
        idx.suffix_hashes(part)  # drop the cached hashes of now-empty suffixes
    log_event(ctx.logger, "partition_dropped", drive=drive, partition=part)
    return True, current


def _remove_tree(drives: DriveLayer, path: Path) -> None:
    for name in drives.listdir(path):
        p = path / name
        if drives.listdir(p):
            _remove_tree(drives, p)
        else:
            drives.unlink(p)
    drives.remove_empty_dirs(path, path.parent)


# -- SUFFIXES (send) -----------------------------------------------------------------

async def _send(req: Request, ctx: NodeContext, bp: BackendPath) -> Response:
    wanted = parse_suffixes(req.query.get("suffixes", ""))

    def plan() -> tuple[Path, list[tuple[str, ObjectRecord]]]:
        root = ctx.check_drive(bp.drive)
        idx: DriveIndex = ctx.index(bp.drive)
        if wanted:
            return root, [r for s in wanted for r in idx.rows(bp.partition, s)]
        return root, idx.rows(bp.partition)

    root, rows = await ctx.run(bp.drive, plan)
    return Response(200, {"Content-Type": "application/x-ringstack-sync"}, _stream(ctx, bp, root, rows))


async def _stream(ctx: NodeContext, bp: BackendPath, root: Path, rows: list[tuple[str, ObjectRecord]]
                  ) -> AsyncIterator[bytes]:
    drives = ctx.drive_layer
    yield MAGIC
    for h, rec in rows:
        for f in rec.files:
            path = root / object_dir(bp.partition, h) / f
            try:
                handle, checksum = await ctx.run(bp.drive, _open_to_send, drives, path)
            except FileNotFoundError:
                continue  # superseded meanwhile; the next pass sees the new state
            try:
                if f.endswith(DATA):
                    yield file_header(h, f, handle.size, rec.size, checksum)
                else:
                    yield file_header(h, f, handle.size)
                off = 0
                while off < handle.size:
                    data = await ctx.run(bp.drive, handle.read_at, off, min(CHUNK_SIZE, handle.size - off))
                    if not data:
                        raise CorruptData(f"{path} shrank while being sent")
                    yield data
                    off += len(data)
            finally:
                handle.close()
    yield END


def _open_to_send(drives: DriveLayer, path: Path) -> tuple[ReadHandle, str | None]:
    """(thread) The file opened, and for a ``.data`` the chunk checksum its
    footer names; None when the footer is unreadable (the receiver then
    refuses the file, and this node's auditor quarantines it)."""
    handle = drives.open_read(path)
    if not path.name.endswith(DATA):
        return handle, None
    try:
        return handle, decode_footer(handle.read_at(handle.size - FOOTER.size, FOOTER.size), handle.size).checksum
    except (CorruptData, OSError):
        return handle, None


# -- MERGE (receive) -----------------------------------------------------------------

class _Incoming:
    """(thread side) One received file: temp file, and for ``.data`` the
    chunk hashes of the body and the trailer bytes, checked at the end."""

    def __init__(self, drives: DriveLayer, root: Path, start: FileStart, direct: bool) -> None:
        self.drives, self.start = drives, start
        self.tmp: TempFile = drives.open_temp(root, direct)
        self.is_data = start.file.endswith(DATA)
        # the sender's trailer carries the ETag; the header names its checksum
        self.hasher = ChunkHasher(md5=False, checksum=start.checksum)
        self.body_left = start.body if self.is_data else 0
        self.tail = bytearray()

    def write(self, data: bytes | bytearray) -> None:
        if self.is_data:
            mv = memoryview(data)
            body, rest = mv[: self.body_left], mv[self.body_left :]
            self.hasher.update(body)
            self.body_left -= len(body)
            self.tail += rest
        self.tmp.write(data)

    def finish(self, loc: ObjectLocation) -> ObjectRecord:
        if self.is_data:
            _, digests = self.hasher.finish()
            tr = decode_trailer(bytes(self.tail), self.start.size)
            if tr.checksum != self.hasher.checksum or tr.digests != digests or tr.body_size != self.start.body \
                    or tr.meta.get("root") != root_hash(tr.checksum, digests, tr.body_size):
                raise CorruptData(f"received {self.start.file} does not match its checksums")
        file_timestamp(self.start.file)
        self.tmp.fsync()
        with self.drives.commit_temp(self.tmp, loc.root, loc.partition, loc.dir, self.start.file) as names:
            return settle(self.drives, loc, None, names)

    def abort(self) -> None:
        self.tmp.abort()


async def _merge(req: Request, ctx: NodeContext, bp: BackendPath) -> Response:
    root = await ctx.run(bp.drive, ctx.check_drive, bp.drive)
    idx = await ctx.run(bp.drive, ctx.index, bp.drive)
    dec = SyncDecoder()
    cur: _Incoming | None = None
    buf = bytearray()
    ops: list[Op] = []
    files = rejected = 0
    try:
        async for chunk in req.iter_body():
            for ev in dec.feed(chunk):
                if isinstance(ev, FileStart):
                    cur = await ctx.run(bp.drive, _Incoming, ctx.drive_layer, root, ev,
                                        ctx.settings.direct_for(ev.size))
                elif isinstance(ev, FileData):
                    buf += ev.data
                    if len(buf) >= CHUNK_SIZE and cur is not None:
                        data, buf = buf, bytearray()
                        await ctx.run(bp.drive, cur.write, data)
                elif isinstance(ev, FileEnd) and cur is not None:
                    incoming, cur = cur, None
                    data, buf = buf, bytearray()
                    try:
                        await ctx.run(bp.drive, incoming.write, data)
                        loc = ObjectLocation(root, bp.partition, incoming.start.hash, "")
                        rec = await ctx.run(bp.drive, incoming.finish, loc)
                    except CorruptData as exc:
                        await ctx.run(bp.drive, incoming.abort)
                        rejected += 1
                        log_event(ctx.logger, "merge_rejected", drive=bp.drive, reason=str(exc))
                        continue
                    files += 1
                    ops.append(idx.op_put_row(bp.partition, incoming.start.hash, rec))
                    if len(ops) >= COMMIT_EVERY:
                        await ctx.committer(bp.drive).commit(ops)
                        ops = []
                elif isinstance(ev, StreamEnd):
                    break
    except (SyncError, ClientDisconnect) as exc:
        if ops:
            await ctx.committer(bp.drive).commit(ops)
        status = 400 if isinstance(exc, SyncError) else 499
        return Response.text(status, f"sync stream: {exc}")
    finally:
        if cur is not None:
            with trio.CancelScope(shield=True):
                await ctx.run(bp.drive, cur.abort)
    if ops:
        await ctx.committer(bp.drive).commit(ops)
    return _json(200 if dec.complete else 400, {"files": files, "rejected": rejected, "complete": dec.complete})
