"""The account server: account databases listing containers (BACKEND_API.md
"Account server"), as Swift's account server behaves.

- ``PUT /<d>/<p>/<a>``: create (201) or update (202); 409 when a newer DELETE
  is recorded. ``GET``/``HEAD``: container listing / counts and metadata
  (``X-Account-Container-Count``, ``-Object-Count``, ``-Bytes-Used``); 404
  when absent, or deleted (with ``X-Account-Status: Deleted`` and
  ``X-Backend-Timestamp``). ``POST``: metadata, 204.
- ``DELETE``: 204; 404 when absent or deleted; 409 while it still lists live
  containers (Swift lets a reseller admin delete a full account and leaves
  the rest to its account reaper; ringstack has no reaper, so it refuses
  rather than orphan data).
- Container rows (``X-Backend-Type: account``, ``PUT /<d>/<p>/<a>/<c>``):
  ``X-Put-Timestamp``, ``X-Delete-Timestamp``, ``X-Object-Count``,
  ``X-Bytes-Used`` and ``X-Stats-Timestamp`` (the newest timestamp the
  container had seen; R2 merges counts by it). 201, or 204 when the row says
  the container is deleted; 404 when the account is absent or deleted.
"""

from __future__ import annotations

from typing import Any

from common.http import HTTPError, Request, Response, is_valid_utf8
from storage_node import _listing_http as lh
from storage_node.listing_db import DbRef, DbState, ListingDbs, NotFound
from storage_node.listing_store import store_for
from storage_node.paths import BadPath, split_backend_path
from storage_node.rows_core import ZERO, ContainerRow, RowError, apply_delete, apply_put, check_name


async def handle(request: Request, ctx: Any) -> Response:
    if not is_valid_utf8(request.path):
        return lh.text(412, "Invalid UTF8 or contains NULL")
    try:
        p = split_backend_path(request.path)
    except BadPath as exc:
        return lh.text(400, str(exc))
    try:
        if request.method == "REPLICATE":
            return await lh.replicate(request, ctx, "account", p)
        if p.account is None or p.obj is not None:
            return lh.text(400, "account requests take /<drive>/<partition>/<account>[/<container>]")
        ref = DbRef("account", p.account)
        if p.container is not None:
            if request.method == "PUT":
                return await _container_row(request, ctx, p.drive, p.partition, ref, p.container)
            return lh.text(405, "container rows take PUT", [("Allow", "PUT")])
        if request.method in ("GET", "HEAD"):
            return await lh.get_or_head(request, ctx, p.drive, ref, p.account)
        if request.method == "PUT":
            return await _put(request, ctx, p.drive, p.partition, ref)
        if request.method == "POST":
            return await lh.post_metadata(request, ctx, p.drive, ref)
        if request.method == "DELETE":
            return await _delete(request, ctx, p.drive, ref)
        return lh.text(405, f"{request.method} is not an account method",
                       [("Allow", "GET, HEAD, PUT, POST, DELETE, REPLICATE")])
    except HTTPError as exc:
        return lh.text(exc.status, exc.message)
    except RowError as exc:
        return lh.text(exc.status, str(exc))


async def _put(request: Request, ctx: Any, drive: str, part: int, ref: DbRef) -> Response:
    ts = lh.req_timestamp(request)
    meta = lh.meta_updates(request, "account", ts)
    store = await store_for(ctx, drive)

    def op(dbs: ListingDbs, txn: Any) -> tuple[DbState, bool]:
        st = dbs.state(txn, ref)
        info, created = apply_put(st.info if st else None, ts, st.row_count if st else 0)
        info = info.with_metadata(meta)
        st = dbs.create(txn, ref, part, info) if st is None else dbs.note_partition(txn, st, part)
        return dbs.set_info(txn, st, info), created

    st, created = await store.write(op)
    if st.deleted:
        return lh.text(409, "a newer DELETE of this account is recorded", lh.state_headers(st, True))
    return Response(201 if created else 202)


async def _delete(request: Request, ctx: Any, drive: str, ref: DbRef) -> Response:
    ts = lh.req_timestamp(request)
    store = await store_for(ctx, drive)

    def op(dbs: ListingDbs, txn: Any) -> DbState:
        st = dbs.state(txn, ref)
        if st is None or st.deleted:
            raise NotFound("account not found", st)
        if st.row_count > 0:
            raise RowError(f"account not empty ({st.row_count} containers)", status=409)
        return dbs.set_info(txn, st, apply_delete(st.info, ts, 0))

    try:
        st = await store.write(op)
    except NotFound as exc:
        return lh.not_found(exc.state, "account")
    if not st.deleted:
        return lh.text(409, "the account was PUT after this DELETE's timestamp",
                       [("X-Backend-Timestamp", st.info.put_timestamp.internal)])
    return Response(204)


async def _container_row(request: Request, ctx: Any, drive: str, part: int, ref: DbRef,
                         name: str) -> Response:
    check_name(name)
    put = lh.req_timestamp(request, "x-put-timestamp", required=False)
    delete = lh.req_timestamp(request, "x-delete-timestamp", required=False)
    if put == ZERO and delete == ZERO:
        put = lh.req_timestamp(request)  # 400 when there is no timestamp at all
    stats = lh.req_timestamp(request, "x-stats-timestamp", required=False)
    row = ContainerRow(name, put, delete, lh.req_int(request, "x-object-count"),
                       lh.req_int(request, "x-bytes-used"), max(stats, put, delete))
    store = await store_for(ctx, drive)

    def op(dbs: ListingDbs, txn: Any) -> None:
        st = dbs.state(txn, ref)
        if st is None or st.deleted:
            raise NotFound("account not found", st)
        if part not in st.partitions:
            st = dbs.note_partition(txn, st, part)
        dbs.merge_row(txn, st, row)

    try:
        await store.write(op)
    except NotFound as exc:
        return lh.not_found(exc.state, "account")
    return Response(204 if delete > put else 201)
