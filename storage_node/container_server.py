"""The container server: container databases and their object rows
(BACKEND_API.md "Container server"), as Swift's container server behaves.

- ``PUT /<d>/<p>/<a>/<c>``: create (201) or update (202) the database, store
  metadata, then send the container's row to its account replicas
  (``X-Account-Host/Device/Partition``, remembered for later count reports).
  A PUT older than the container's delete leaves it deleted: 409. All account
  replicas that answered said 404 -> 404 "account not found" (Swift).
- ``GET``/``HEAD``: listing / counts and metadata; 404 when absent, or with
  ``X-Backend-Timestamp`` (the delete's) when deleted.
- ``POST``: metadata, 204. ``DELETE``: 204; 409 when not empty or older than
  the put; 404 when absent or already deleted.
- Object rows (``X-Backend-Type: container``, ``/<d>/<p>/<a>/<c>/<o>``):
  ``PUT`` (``X-Timestamp``, ``X-Size``, ``X-Content-Type``, ``X-Etag``,
  optional ``X-Content-Type-Timestamp``) 201,
  ``DELETE`` 204 (a tombstone row); 404 if the database never existed. The
  newer row wins (R1, invariant 2).

Account reports: every change of a container's counts or put/delete
timestamps marks it *dirty* in the same transaction (``listing.dirty``, a
durable queue). Container PUT/DELETE report at once; ``run_account_reporter``
(started by the storage server) sends the rest, coalesced, and a report is
cleared only when every account replica acknowledged it and the container
did not change meanwhile, so a failed update is retried, never lost.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import trio

from common.http import HTTPError, Request, Response, is_valid_utf8
from common.log import log_event
from storage_node import _listing_http as lh
from storage_node.drive import DriveUnavailable
from storage_node.listing_db import DbRef, DbState, ListingDbs, NotFound
from storage_node.listing_store import store_for
from storage_node.paths import BadPath, split_backend_path
from storage_node.rows_core import ZERO, ObjectRow, RowError, apply_delete, apply_put, check_name


async def handle(request: Request, ctx: Any) -> Response:
    ensure_account_reporter(ctx)
    if not is_valid_utf8(request.path):
        return lh.text(412, "Invalid UTF8 or contains NULL")
    try:
        p = split_backend_path(request.path)
    except BadPath as exc:
        return lh.text(400, str(exc))
    try:
        if request.method == "REPLICATE":
            return await lh.replicate(request, ctx, "container", p)
        if p.account is None or p.container is None:
            return lh.text(400, "container requests take /<drive>/<partition>/<account>/<container>")
        ref = DbRef("container", p.account, p.container)
        if p.obj is not None:
            if request.method in ("PUT", "DELETE"):
                return await _object_row(request, ctx, p.drive, p.partition, ref, p.obj)
            return lh.text(405, "object rows take PUT or DELETE", [("Allow", "PUT, DELETE")])
        if request.method in ("GET", "HEAD"):
            return await lh.get_or_head(request, ctx, p.drive, ref, p.container)
        if request.method == "PUT":
            return await _put(request, ctx, p.drive, p.partition, ref)
        if request.method == "POST":
            return await lh.post_metadata(request, ctx, p.drive, ref)
        if request.method == "DELETE":
            return await _delete(request, ctx, p.drive, ref)
        return lh.text(405, f"{request.method} is not a container method",
                       [("Allow", "GET, HEAD, PUT, POST, DELETE, REPLICATE")])
    except HTTPError as exc:
        return lh.text(exc.status, exc.message)
    except RowError as exc:
        return lh.text(exc.status, str(exc))


def _utf8_header(value: str) -> str:
    """Header values arrive as latin-1 text of the raw bytes; a Content-Type
    given as raw UTF-8 is listed as that UTF-8 text, as Swift does
    (tests.py TestFileUTF8.testSerialization)."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


async def _object_row(request: Request, ctx: Any, drive: str, part: int, ref: DbRef,
                      name: str) -> Response:
    ts = lh.req_timestamp(request)
    check_name(name)
    if request.method == "PUT":
        # X-Content-Type-Timestamp: a POST that changed the content type (R1)
        row = ObjectRow(name, ts, lh.req_int(request, "x-size"),
                        _utf8_header(request.headers.get("x-content-type", "") or ""),
                        request.headers.get("x-etag", "") or "",
                        ctype_timestamp=lh.req_timestamp(request, "x-content-type-timestamp", False))
    else:
        row = ObjectRow(name, ts, deleted=True)
    store = await store_for(ctx, drive)

    def op(dbs: ListingDbs, txn: Any) -> None:
        st = dbs.state(txn, ref)
        if st is None:
            raise NotFound("container not found")
        if part not in st.partitions:
            st = dbs.note_partition(txn, st, part)
        dbs.merge_row(txn, st, row)

    try:
        await store.write(op)
    except NotFound as exc:
        return lh.text(404, str(exc))
    return Response(201 if request.method == "PUT" else 204)


async def _put(request: Request, ctx: Any, drive: str, part: int, ref: DbRef) -> Response:
    ts = lh.req_timestamp(request)
    meta = lh.meta_updates(request, "container", ts)
    targets = lh.account_targets(request)
    store = await store_for(ctx, drive)

    def op(dbs: ListingDbs, txn: Any) -> tuple[DbState, bool]:
        st = dbs.state(txn, ref)
        info, created = apply_put(st.info if st else None, ts, st.row_count if st else 0)
        info = info.with_metadata(meta)
        st = dbs.create(txn, ref, part, info) if st is None else dbs.note_partition(txn, st, part)
        if targets:
            st = _with_targets(st, targets)
        return dbs.set_info(txn, st, info), created

    st, created = await store.write(op)
    if st.deleted:
        return lh.text(409, "a newer DELETE of this container is recorded", lh.state_headers(st, True))
    failure = await _report_now(request, ctx, store, st)
    if failure is not None:
        return failure
    return Response(201 if created else 202)


async def _delete(request: Request, ctx: Any, drive: str, ref: DbRef) -> Response:
    ts = lh.req_timestamp(request)
    targets = lh.account_targets(request)
    store = await store_for(ctx, drive)

    def op(dbs: ListingDbs, txn: Any) -> tuple[DbState, bool]:
        st = dbs.state(txn, ref)
        if st is None:
            raise NotFound("container not found")
        if st.row_count > 0:
            raise RowError(f"container not empty ({st.row_count} objects)", status=409)
        existed = st.info.put_timestamp != ZERO and not st.deleted
        if targets:
            st = _with_targets(st, targets)
        return dbs.set_info(txn, st, apply_delete(st.info, ts, 0)), existed

    try:
        st, existed = await store.write(op)
    except NotFound as exc:
        return lh.text(404, str(exc))
    if not st.deleted:
        return lh.text(409, "the container was PUT after this DELETE's timestamp",
                       [("X-Backend-Timestamp", st.info.put_timestamp.internal)])
    failure = await _report_now(request, ctx, store, st)
    if failure is not None:
        return failure
    if existed:
        return Response(204)
    return lh.not_found(st, "container")


def _with_targets(st: DbState, targets: tuple[tuple[str, int, str, int], ...]) -> DbState:
    return replace(st, account_targets=targets)


async def _report_now(request: Request, ctx: Any, store: Any, st: DbState) -> Response | None:
    """Send the container row to the account now (container PUT/DELETE)."""
    if not st.account_targets:
        return None
    statuses = await lh.send_account_updates(ctx, st, request.headers.get("x-trans-id"))
    if all(200 <= s < 300 for s in statuses):
        await store.write(lh.mark_reported, st)
    elif 404 in statuses and not any(200 <= s < 300 for s in statuses):
        return lh.text(404, "account not found")
    return None  # others stay dirty: run_account_reporter retries them


# -- the account reporter ------------------------------------------------------------

_REPORT_CURSOR: dict[tuple[int, str], bytes] = {}  # where the next pass starts, per drive

async def report_dirty(ctx: Any, drive: str, limit: int = 1000, concurrency: int = 16) -> int:
    """Report every dirty container of ``drive`` to its account once; returns
    how many were acknowledged by all their account replicas."""
    store = await store_for(ctx, drive)

    def read(dbs: ListingDbs, txn: Any) -> list[DbState]:
        refs = dbs.dirty_refs(txn, limit, _REPORT_CURSOR.get(key, b""))
        return [st for ref in refs if (st := dbs.state(txn, ref)) is not None]

    key = (id(ctx), drive)
    states = await store.read(read)
    if states:
        _REPORT_CURSOR[key] = states[-1].ref.key
    done = 0
    limiter = trio.CapacityLimiter(concurrency)

    async def one(st: DbState) -> None:
        nonlocal done
        async with limiter:
            statuses = await lh.send_account_updates(ctx, st) if st.account_targets else []
            # 404: no such account here; a later change of the container re-marks it
            if all(200 <= s < 300 or s == 404 for s in statuses):
                await store.write(lh.mark_reported, st)
                done += 1

    async with trio.open_nursery() as nursery:
        for st in states:
            nursery.start_soon(one, st)
    return done


async def run_account_reporter(ctx: Any, interval: float = 1.0,
                               task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Forever: report dirty containers of every drive, then sleep ``interval``."""
    task_status.started()
    while True:
        for drive in list(ctx.drives):
            try:
                await report_dirty(ctx, drive)
            except DriveUnavailable:
                continue  # that drive answers 507 to requests; nothing to report from it
            except Exception as exc:  # a bad drive must not stop the others
                log_event(ctx.logger, "account_reporter_error", drive=drive, error=repr(exc))
        await trio.sleep(interval)


_REPORTERS: dict[int, Any] = {}  # id(ctx) -> ctx (held, so the id is not reused)


def ensure_account_reporter(ctx: Any) -> None:
    """Start ``run_account_reporter`` for ``ctx`` once, as a trio system task
    (it lives as long as the trio run; the storage server does not need to
    know about it). A server that prefers to own it in its nursery calls
    ``run_account_reporter`` there and ``mark_reporter_started(ctx)`` first."""
    if _REPORTERS.get(id(ctx)) is ctx:
        return
    _REPORTERS[id(ctx)] = ctx
    interval = float(getattr(ctx.settings, "account_report_interval", 1.0))
    trio.lowlevel.spawn_system_task(run_account_reporter, ctx, interval)


def mark_reporter_started(ctx: Any) -> None:
    _REPORTERS[id(ctx)] = ctx
