"""The object server (shell): PUT/GET/HEAD/POST/DELETE of one object.

Decisions come from ``object_core`` / ``conditional_core``; files from
``diskfile`` through the injected drive layer, in worker threads under the
drive's limiter; index rows through the drive's group committer.

Contract per verb (BACKEND_API.md "Objects"):
- PUT: 409 is decided before the body is read; the body streams to a temp
  file as it arrives (``Request.pump_body``: memory flat, invariant 4); a
  hang-up (499), stall (408), ETag mismatch (422), full drive (507) or
  cancellation removes the temp file and leaves nothing visible (invariant 5). 201 only after
  file fsync, rename, directory fsync and the index commit (invariant 1),
  and after the container updates were sent or queued.
- GET: chunks are verified before they are sent; a mismatch in the first
  chunk quarantines and answers 404 (as Swift's DiskFileQuarantined), a later
  one quarantines and aborts the response (invariant 3). HEAD stats the file.
  A data file lost behind the index's back is noticed here and the row fixed;
  so is a row that lags its files (one listdir per GET/HEAD: a crash between
  rename and index commit must not serve data a durable tombstone deleted).
- DELETE: tombstone; 204 if there was live data, else 404; both carry on.
- POST: ``.meta`` file; 202.
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import trio

from common.bodyhash import CHUNK_SIZE
from common.http import BodyTimeout, ClientDisconnect, Request, Response
from common.log import log_event
from common.timestamp import Timestamp
from storage_node import async_pending
from storage_node.body_core import (
    BodyFingerprint,
    body_checksum,
    declared_length,
    is_proxy_hashed,
    proxy_fingerprint,
)
from storage_node.conditional_core import (
    Unsatisfiable,
    evaluate_conditions,
    multipart_layout,
    parse_range,
)
from storage_node.context import NodeContext, drive_errors
from storage_node.diskfile import (
    ObjectLocation,
    ObjectReader,
    ObjectWriter,
    quarantine,
    settle,
    write_small,
)
from storage_node.drive import DriveUnavailable
from storage_node.integrity import CorruptData
from storage_node.object_core import (
    META,
    TOMB,
    ObjectError,
    ObjectRecord,
    check_delete_at,
    check_if_delete_at,
    check_post,
    check_put_or_delete,
    last_modified,
    meta_headers,
    post_headers,
    put_headers,
    require_timestamp,
    response_headers,
)
from storage_node.paths import BackendPath, hash_for

SMALL_BODY = 1 << 20  # bodies up to this size are read whole, then written in one thread hop


class Counters:
    """Process-wide object counters (exported by ``/metrics``)."""

    quarantined = 0
    lost_files = 0


def _loc(ctx: NodeContext, bp: BackendPath, root: Path) -> ObjectLocation:
    return ObjectLocation(root, bp.partition, hash_for(ctx.hash_secret, bp), bp.name)


def _not_found(rec: ObjectRecord | None) -> Response:
    hdrs = {"X-Backend-Timestamp": rec.tomb_ts.internal} if rec and rec.tomb_ts else {}
    return Response.text(404, "", hdrs)


async def handle(request: Request, ctx: NodeContext, bp: BackendPath) -> Response:
    try:
        if request.method == "PUT":
            return await _put(request, ctx, bp)
        if request.method in ("GET", "HEAD"):
            return await _get(request, ctx, bp)
        if request.method == "DELETE":
            return await _delete(request, ctx, bp)
        if request.method == "POST":
            return await _post(request, ctx, bp)
    except ObjectError as exc:
        return Response.text(exc.status, str(exc) if exc.status != 404 else "", exc.headers)
    return Response.text(405, f"{request.method} is not allowed on an object", {"Allow": "PUT, GET, HEAD, POST, DELETE"})


# -- PUT -------------------------------------------------------------------------

async def _put(req: Request, ctx: NodeContext, bp: BackendPath) -> Response:
    ts = require_timestamp(req.headers)
    check_delete_at(req.headers, ctx.clock())
    if req.content_length is None and not req.chunked:
        return Response.text(411, "Missing Content-Length or Transfer-Encoding: chunked")
    proxy_hashed = is_proxy_hashed(req.headers)
    if proxy_hashed and not req.chunked:
        return Response.text(400, "X-Backend-Obj-Trailer: yes needs a chunked body (the trailer carries its hashes)")
    declared = declared_length(req.headers, req.content_length)
    checksum = body_checksum(req.headers, proxy_hashed)
    limit = ctx.settings.max_object_size
    if declared is not None and declared > limit:
        return Response.text(413, f"Object larger than {limit} bytes")
    headers = put_headers(req.headers.items())
    tg = async_pending.targets(req.headers)
    if isinstance(tg, str):
        return Response.text(400, tg)

    if_none_match = (req.headers.get("if-none-match") or "").strip() == "*"

    def begin() -> tuple[ObjectLocation, ObjectWriter]:
        root = ctx.check_drive(bp.drive)
        loc = _loc(ctx, bp, root)
        held = ctx.index(bp.drive).get(bp.partition, loc.hash)
        check_put_or_delete(held, ts)
        if if_none_match and held is not None and held.exists and not held.expired(ctx.clock()):
            raise ObjectError(412, "If-None-Match: * and the object exists")
        need = ctx.settings.reserve_bytes + (declared or 0)
        if ctx.drive_layer.free_bytes(root) < need:  # keep room for tombstones (Swift's fallocate_reserve)
            raise DriveUnavailable(f"drive {bp.drive!r} is full")
        direct = ctx.settings.direct_for(declared)
        return loc, ObjectWriter(ctx.drive_layer, root, md5=not proxy_hashed, direct=direct, checksum=checksum)

    def fingerprint() -> BodyFingerprint | None:
        """The proxy's hashes from the trailer (once the body was read)."""
        return proxy_fingerprint(req.trailers) if proxy_hashed else None

    if declared is not None and declared <= SMALL_BODY:
        # Small body: read it first, then one thread hop does the 409 check,
        # write, fsync, rename, directory fsync and settle (fewer wake-ups).
        try:
            body = await req.read(declared)
        except (ClientDisconnect, BodyTimeout) as exc:
            return Response.text(exc.status, exc.message or "client disconnected")
        if len(body) != declared:
            return Response.text(499, "body shorter than Content-Length")
        proxied = fingerprint()

        def write_all() -> tuple[ObjectLocation, ObjectWriter, ObjectRecord]:
            loc, writer = begin()
            try:
                writer.write(body)
                writer.finish(bp.name, headers, req.headers.get("etag"), proxied)
                rec = writer.commit(loc, ts)
            except BaseException:
                writer.abort()
                raise
            _index_sync(ctx, bp, loc, rec)
            return loc, writer, rec

        loc, writer, rec = await ctx.run(bp.drive, write_all)
    else:
        loc, writer, rec = await _put_streamed(req, ctx, bp, ts, headers, declared, limit, begin, fingerprint)
    meta = writer.meta
    await async_pending.update_containers(ctx, req.headers, bp.drive, bp.name, loc.hash, "PUT", ts,
                                          meta["size"], headers["content-type"], meta["etag"])
    return Response(201, {"ETag": meta["etag"], "X-Backend-Timestamp": ts.internal})


async def _put_streamed(req: Request, ctx: NodeContext, bp: BackendPath, ts: Timestamp, headers: dict[str, str],
                        declared: int | None, limit: int, begin: Callable[[], tuple[ObjectLocation, ObjectWriter]],
                        fingerprint: Callable[[], BodyFingerprint | None],
                        ) -> tuple[ObjectLocation, ObjectWriter, ObjectRecord]:
    """Stream a large or chunked body to the temp file; on any failure the
    temp file is removed before re-raising."""
    loc, writer = await ctx.run(bp.drive, begin)
    committed = False
    intake = (_LendingIntake if writer.lends else _Intake)(writer, limit, declared)
    try:
        with drive_errors(bp.drive):
            await req.pump_body(intake)
        if declared is not None and intake.received != declared:
            raise ClientDisconnect("body shorter than Content-Length")
        proxied = fingerprint()

        def finish() -> ObjectRecord:
            writer.finish(bp.name, headers, req.headers.get("etag"), proxied)
            rec = writer.commit(loc, ts)
            _index_sync(ctx, bp, loc, rec)
            return rec

        rec = await ctx.run(bp.drive, finish)
        committed = True
        return loc, writer, rec
    except (ClientDisconnect, BodyTimeout) as exc:
        await _abort(ctx, bp.drive, writer)
        raise ObjectError(exc.status, exc.message or "client disconnected") from exc
    except BaseException:
        if not committed:
            await _abort(ctx, bp.drive, writer)
        raise


class _Intake:
    """(pump thread) Takes a PUT body for its writer, piece by piece, and
    stops it with 413 past the object size limit or the announced length.
    The server reads the socket in the same thread when it can
    (``pump_body``): the body never crosses to the event loop."""

    __slots__ = ("writer", "limit", "declared", "received")

    def __init__(self, writer: ObjectWriter, limit: int, declared: int | None) -> None:
        self.writer = writer
        self.limit = limit
        self.declared = declared
        self.received = 0

    def _count(self, n: int) -> None:
        self.received += n
        if self.received > self.limit:
            raise ObjectError(413, f"Object larger than {self.limit} bytes")
        if self.declared is not None and self.received > self.declared:
            raise ObjectError(413, f"Body longer than the {self.declared} bytes announced")

    def __call__(self, piece: memoryview) -> None:
        self._count(len(piece))
        self.writer.write(piece)


class _LendingIntake(_Intake):
    """An intake whose writer lends its direct-I/O buffer: the pump reads the
    body's bytes straight into it (``common._bodypump``: a sink's ``space``
    and ``filled``), so nothing copies them between the socket and the disk."""

    __slots__ = ()

    def space(self) -> memoryview:
        return self.writer.space()

    def filled(self, n: int) -> None:
        self._count(n)
        self.writer.filled(n)


def _index_sync(ctx: NodeContext, bp: BackendPath, loc: ObjectLocation, rec: ObjectRecord) -> None:
    """(thread) Commit the object's row through the drive's group committer,
    in the same thread hop that made its files durable."""
    ctx.committer(bp.drive).commit_sync([ctx.index(bp.drive).op_put_row(bp.partition, loc.hash, rec)])


async def _abort(ctx: NodeContext, drive: str, writer: ObjectWriter) -> None:
    with trio.CancelScope(shield=True):
        try:
            await ctx.run(drive, writer.abort)
        except OSError:
            pass


# -- GET / HEAD -------------------------------------------------------------------

def _open(ctx: NodeContext, bp: BackendPath, head: bool) -> tuple[ObjectLocation, ObjectRecord | None, ObjectReader | None]:
    """(thread) The row and, for GET, a verified reader; repairs the row when
    the data file vanished and quarantines a corrupt file."""
    root = ctx.check_drive(bp.drive)
    loc = _loc(ctx, bp, root)
    idx = ctx.index(bp.drive)
    rec = idx.get(bp.partition, loc.hash)
    on_disk = ctx.drive_layer.listdir(loc.dir)
    if sorted(on_disk) != sorted(rec.files if rec else ()):
        # The row lags the files (a crash between a rename and its index
        # commit, FAULTS 3: files without a row, or a row naming the old
        # .data beside a newer .data or .ts): the files are the truth, so
        # rebuild the row rather than answer a false 404 or serve data a
        # durable tombstone deleted (invariant 2). One listdir per GET/HEAD.
        # Forced only when a file of the row is gone (lost behind the index);
        # otherwise never older than a racing writer's row.
        with ctx.drive_layer.lock_dir(loc.dir):
            fresh = settle(ctx.drive_layer, loc)
        lost = rec is not None and any(f not in on_disk for f in rec.files)
        idx.apply([idx.op_put_row(bp.partition, loc.hash, fresh, force=lost)])
        rec = fresh
    def live(r: ObjectRecord | None) -> bool:
        return r is not None and r.exists and not r.expired(ctx.clock())

    try:
        if rec is None or not live(rec):
            return loc, rec, None
        try:
            return loc, rec, _open_data(ctx, loc, rec, head)
        except FileNotFoundError:
            # The row names a file that a racing PUT/DELETE has just replaced
            # (or one lost behind the index): settle, and open the winner
            # while still holding the directory lock, so no writer can
            # replace it before it is open (an open file outlives its
            # unlink). A concurrent overwrite never makes this replica answer
            # a false 404 (FAULTS 14, invariant 2).
            Counters.lost_files += 1
            with ctx.drive_layer.lock_dir(loc.dir):
                rec = settle(ctx.drive_layer, loc)
                reader = _open_data(ctx, loc, rec, head) if live(rec) else None
            idx.apply([idx.op_put_row(bp.partition, loc.hash, rec, force=True)])
            return loc, rec, reader
    except FileNotFoundError:  # gone again under the lock: lost behind the index, missing here
        return loc, None, None
    except CorruptData:
        quarantine_object(ctx, bp, loc)
        return loc, None, None


def _open_data(ctx: NodeContext, loc: ObjectLocation, rec: ObjectRecord, head: bool) -> ObjectReader | None:
    """(thread) A verified reader of ``rec``'s data file (HEAD: only check
    that it is there); FileNotFoundError when it is gone."""
    assert rec.data_file is not None
    path = loc.dir / rec.data_file
    if head:
        ctx.drive_layer.open_read(path).close()
        return None
    reader = ObjectReader(ctx.drive_layer, path, rec)
    try:
        reader.chunk(0)
    except BaseException:
        reader.close()
        raise
    return reader


def quarantine_object(ctx: NodeContext, bp: BackendPath, loc: ObjectLocation) -> None:
    """(thread) Move the hash dir aside and drop the row (invariant 3)."""
    try:
        quarantine(ctx.drive_layer, loc)
    except FileNotFoundError:
        pass
    idx = ctx.index(bp.drive)
    idx.apply([idx.op_delete_row(bp.partition, loc.hash)])
    Counters.quarantined += 1
    log_event(ctx.logger, "quarantined", drive=bp.drive, hash=loc.hash, name=bp.name)


async def _get(req: Request, ctx: NodeContext, bp: BackendPath) -> Response:
    head = req.method == "HEAD"
    loc, rec, reader = await ctx.run(bp.drive, _open, ctx, bp, head)
    if rec is None or not rec.exists or rec.expired(ctx.clock()):
        return _not_found(rec)
    try:
        hdrs = response_headers(rec)
        status = evaluate_conditions(_lower(req), rec.etag, last_modified(rec), req.method)
        if status != 200:
            return Response(status, hdrs)
        try:
            ranges = parse_range(req.headers.get("range"), rec.size)
        except Unsatisfiable as exc:
            return Response(416, hdrs + [("Content-Range", f"bytes */{rec.size}")], str(exc).encode())
        if head or reader is None:
            return Response(200, hdrs + [("Content-Length", str(rec.size))])
        if ranges is None:
            spans = [(b"", 0, rec.size - 1)]
            tail = b""
            status, length = 200, rec.size
        elif len(ranges) == 1:
            a, b = ranges[0]
            spans, tail, status, length = [(b"", a, b)], b"", 206, b - a + 1
            hdrs.append(("Content-Range", f"bytes {a}-{b}/{rec.size}"))
        else:
            mp = multipart_layout(ranges, rec.size, dict(hdrs)["Content-Type"], uuid.uuid4().hex)
            spans = [(p.head, p.start, p.end) for p in mp.parts]
            tail, status, length = mp.tail, 206, mp.length
            hdrs = [(k, v) for k, v in hdrs if k != "Content-Type"] + [("Content-Type", mp.content_type)]
        body = _stream(ctx, bp, loc, reader, spans, tail)
        reader = None  # the body owns it now
        return Response(status, hdrs + [("Content-Length", str(length))], body)
    finally:
        if reader is not None:
            reader.close()


def _lower(req: Request) -> dict[str, str]:
    return {k: req.headers[k] for k in ("if-match", "if-none-match", "if-modified-since",
                                        "if-unmodified-since") if k in req.headers}


async def _stream(ctx: NodeContext, bp: BackendPath, loc: ObjectLocation, reader: ObjectReader,
                  spans: list[tuple[bytes, int, int]], tail: bytes) -> AsyncIterator[bytes]:
    """Yield verified bytes; on corruption quarantine and raise (the server
    then aborts the connection). Closes the reader on every exit."""
    try:
        for head, a, b in spans:
            if head:
                yield head
            pos = a
            while pos <= b:
                if reader.has_chunk(pos // CHUNK_SIZE):
                    data = reader.read_range(pos, b)
                else:
                    data = await ctx.run(bp.drive, reader.read_range, pos, b)
                yield data
                pos += len(data)
        if tail:
            yield tail
    except CorruptData:
        with trio.CancelScope(shield=True):
            await ctx.run(bp.drive, quarantine_object, ctx, bp, loc)
        raise
    finally:
        reader.close()


# -- DELETE / POST ----------------------------------------------------------------

async def _delete(req: Request, ctx: NodeContext, bp: BackendPath) -> Response:
    ts = require_timestamp(req.headers)

    def work() -> tuple[ObjectLocation, ObjectRecord | None, ObjectRecord]:
        root = ctx.check_drive(bp.drive)
        loc = _loc(ctx, bp, root)
        old = ctx.index(bp.drive).get(bp.partition, loc.hash)
        check_put_or_delete(old, ts)
        check_if_delete_at(old, req.headers)
        rec = write_small(ctx.drive_layer, loc, ts, TOMB, {"name": bp.name})
        _index_sync(ctx, bp, loc, rec)
        return loc, old, rec

    loc, old, rec = await ctx.run(bp.drive, work)
    await async_pending.update_containers(ctx, req.headers, bp.drive, bp.name, loc.hash, "DELETE", ts)
    if old is not None and old.exists and not old.expired(ctx.clock()):
        return Response(204, {"X-Backend-Timestamp": ts.internal})
    hdrs = {"X-Backend-Timestamp": old.tomb_ts.internal} if old and old.tomb_ts else {}
    return Response.text(404, "", hdrs)


async def _post(req: Request, ctx: NodeContext, bp: BackendPath) -> Response:
    ts = require_timestamp(req.headers)
    check_delete_at(req.headers, ctx.clock())
    new_headers = post_headers(req.headers.items())

    def work() -> tuple[ObjectLocation, ObjectRecord]:
        root = ctx.check_drive(bp.drive)
        loc = _loc(ctx, bp, root)
        old = check_post(ctx.index(bp.drive).get(bp.partition, loc.hash), ts, ctx.clock())
        rec = write_small(ctx.drive_layer, loc, ts, META, {"headers": meta_headers(new_headers, old, ts)})
        _index_sync(ctx, bp, loc, rec)
        return loc, rec

    loc, rec = await ctx.run(bp.drive, work)
    await async_pending.update_after_post(ctx, req.headers, bp.drive, bp.name, loc.hash, ts, rec)
    return Response(202, {"X-Backend-Timestamp": ts.internal})


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
