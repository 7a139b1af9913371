"""HTTP plumbing shared by the container and account servers: request
parsing, Swift's response headers, listings, account updates and the
REPLICATE verbs for listing databases (BACKEND_API.md "Replication").

REPLICATE for databases (``X-Backend-Type: container|account``):
- ``REPLICATE /<d>/<p>``: ``{path: summary}`` for every database of that
  kind in the partition; a summary is ``{account, container, id, max_row,
  hash, info, rows, objects, bytes, deleted}`` (``hash``: XOR of row digests,
  equal on two replicas exactly when their rows are equal).
- ``REPLICATE /<d>/<p>/<a>[/<c>]`` with a JSON body ``{"op": ...}``:
  ``info`` (or no body) -> the summary (404 if absent);
  ``rows_since`` ``{point, limit}`` -> ``{rows, point, max_row, hash}``;
  ``merge`` ``{rows, info}`` -> merges rows and info (creates the database
  when ``info`` is given) -> ``{changed, summary}``;
  ``sync_points`` -> ``{points: {peer db id: row id}}`` and
  ``set_sync_point`` ``{remote, point}``: how far this database's rows were
  sent to each peer database (kept across restarts, dropped with the db);
  ``reclaim`` -> drops tombstone rows older than the node's reclaim_age, and
  the whole database once it is deleted, empty and older than that;
  ``drop`` ``{hash}`` -> removes the database only if its hash still equals
  ``hash`` (what every new owner confirmed; invariant 3), else 409.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
from typing import Any

import trio

from common.http import HTTPError, Request, Response, quote_path
from common.log import log_event
from common.timestamp import Timestamp, TimestampError
from storage_node.listing_core import format_listing, list_entries, negotiate, parse_listing_query
from storage_node.listing_db import DbRef, DbState, ListingDbs, NotFound, container_row_of
from storage_node.listing_store import store_for
from storage_node.paths import BackendPath
from storage_node.rows_core import (
    RowError,
    canonical_header,
    info_from_dict,
    row_from_list,
)
from storage_node.rows_core import row_to_list as _row_to_list

MAX_REPLICATE_BODY = 64 << 20
_META_PREFIXES = {
    "container": ("x-container-meta-", "x-container-sysmeta-"),
    "account": ("x-account-meta-", "x-account-sysmeta-"),
}
_META_EXACT = {
    "container": ("x-container-read", "x-container-write", "x-container-sync-to",
                  "x-container-sync-key", "x-versions-location", "x-history-location"),
    "account": ("x-account-access-control",),
}


def text(status: int, message: str = "", headers: Any = None) -> Response:
    return Response.text(status, message, headers)


def req_timestamp(request: Request, name: str = "x-timestamp", required: bool = True) -> Timestamp:
    value = request.headers.get(name)
    if value is None:
        if required:
            raise HTTPError(f"Missing {canonical_header(name)} header", 400)
        return Timestamp(0)
    try:
        return Timestamp.parse(value)
    except TimestampError as exc:
        raise HTTPError(f"{canonical_header(name)}: {exc}", 400) from exc


def req_int(request: Request, name: str, default: int = 0) -> int:
    value = request.headers.get(name)
    if value is None or value.strip() == "":
        return default
    if not value.strip().isdigit():
        raise HTTPError(f"{canonical_header(name)} must be a non-negative integer", 400)
    return int(value)


def meta_updates(request: Request, kind: str, ts: Timestamp) -> dict[str, tuple[str, Timestamp]]:
    """Metadata headers of the request, each stamped with the request's timestamp."""
    out: dict[str, tuple[str, Timestamp]] = {}
    for key, value in request.headers.items():
        if key.startswith("x-remove-"):  # Swift's X-Remove-Container-Meta-Foo == empty value
            key, value = "x-" + key[len("x-remove-"):], ""
        if key.startswith(_META_PREFIXES[kind]) or key in _META_EXACT[kind]:
            out[canonical_header(key)] = (value.strip(), ts)
    return out


def account_targets(request: Request) -> tuple[tuple[str, int, str, int], ...]:
    """``X-Account-Host/Device/Partition`` (comma-separated, aligned)."""
    hosts = [h.strip() for h in (request.headers.get("x-account-host") or "").split(",") if h.strip()]
    if not hosts:
        return ()
    devices = [d.strip() for d in (request.headers.get("x-account-device") or "").split(",")]
    part = (request.headers.get("x-account-partition") or "").strip()
    if len(devices) != len(hosts) or not part.isdigit():
        raise HTTPError("X-Account-Host, X-Account-Device and X-Account-Partition do not line up", 400)
    out = []
    for h, d in zip(hosts, devices, strict=True):
        host, _, port = h.rpartition(":")
        if not host or not port.isdigit() or not d:
            raise HTTPError(f"bad account target {h!r}/{d!r}", 400)
        out.append((host.strip("[]"), int(port), d, int(part)))
    return tuple(out)


def _last_modified(info: Any) -> str:
    """Swift's container Last-Modified: the put (or newest metadata POST)
    time rounded up to whole seconds (tests.py TestContainer.testContainerLastModified)."""
    newest = max([info.put_timestamp, *(ts for _k, _v, ts in info.metadata)])
    return email.utils.formatdate(math.ceil(float(newest.normal)), usegmt=True)


def state_headers(st: DbState, deleted: bool = False) -> list[tuple[str, str]]:
    """Swift's backend headers; X-Backend-Timestamp is the newest put/delete
    (on a 404 after a delete: the delete's), so a proxy can order replies."""
    info = st.info
    hdrs = [
        ("X-Backend-Timestamp", max(info.put_timestamp, info.delete_timestamp).internal),
        ("X-Backend-Put-Timestamp", info.put_timestamp.internal),
        ("X-Backend-Delete-Timestamp", info.delete_timestamp.internal),
        ("X-Backend-Status-Changed-At", info.status_changed_at.internal),
    ]
    if deleted:
        if st.ref.kind == "account":
            hdrs.append(("X-Account-Status", "Deleted"))
        return hdrs
    if st.ref.kind == "container":
        hdrs += [("X-Container-Object-Count", str(st.object_count)),
                 ("X-Container-Bytes-Used", str(st.bytes_used)),
                 ("Last-Modified", _last_modified(info))]
    else:
        hdrs += [("X-Account-Container-Count", str(st.row_count)),
                 ("X-Account-Object-Count", str(st.object_count)),
                 ("X-Account-Bytes-Used", str(st.bytes_used))]
    hdrs += [("X-Timestamp", info.created_at.normal), ("X-PUT-Timestamp", info.put_timestamp.normal)]
    hdrs += list(info.visible_metadata().items())
    return hdrs


def not_found(st: DbState | None, what: str) -> Response:
    if st is None:
        return text(404, f"{what} not found")
    return text(404, f"{what} was deleted", state_headers(st, deleted=True))


async def get_or_head(request: Request, ctx: Any, drive: str, ref: DbRef, owner: str) -> Response:
    """GET (listing) or HEAD of a container or account database."""
    what = ref.kind
    try:
        media = negotiate(request.query, request.headers.get("accept"))
        q = parse_listing_query(request.query) if request.method == "GET" else None
    except RowError as exc:
        return text(exc.status, str(exc))
    store = await store_for(ctx, drive)

    def read(dbs: ListingDbs, txn: Any) -> tuple[DbState | None, list[Any]]:
        st = dbs.state(txn, ref)
        if st is None or st.deleted or q is None:
            return st, []
        return st, list_entries(lambda s, i, r: dbs.iter_rows(txn, st.cid, s, i, r), q)

    st, entries = await store.read(read)
    if st is None or st.deleted:
        return not_found(st, what)
    headers = state_headers(st)
    ctype = f"{media}; charset=utf-8"
    if q is None:
        return Response(204, [*headers, ("Content-Type", ctype)])
    body = format_listing(what, owner, entries, media)
    if body is None:
        return Response(204, [*headers, ("Content-Type", ctype)])
    return Response(200, [*headers, ("Content-Type", ctype)], body)


async def post_metadata(request: Request, ctx: Any, drive: str, ref: DbRef) -> Response:
    ts = req_timestamp(request)
    updates = meta_updates(request, ref.kind, ts)
    store = await store_for(ctx, drive)

    def op(dbs: ListingDbs, txn: Any) -> DbState:
        st = dbs.state(txn, ref)
        if st is None or st.deleted:
            raise NotFound(f"{ref.kind} not found", st)
        if not updates:
            return st
        merged = st.info.with_metadata(updates)
        problem = _aggregate_problem(ref.kind, merged.visible_metadata())
        if problem is not None:
            raise _MetadataTooLarge(problem)
        return dbs.set_info(txn, st, merged)

    try:
        await store.write(op)
    except NotFound as exc:
        return not_found(exc.state, ref.kind)
    except _MetadataTooLarge as exc:
        return Response.text(400, str(exc))
    return Response(204)


# Swift's defaults (DatabaseBroker.validate_metadata): a POST may be fine by
# itself yet take the stored total over the limit (test_account /
# test_container test_*bad_metadata3).
MAX_META_COUNT = 90
MAX_META_OVERALL_SIZE = 4096


class _MetadataTooLarge(Exception):
    pass


def _aggregate_problem(kind: str, meta: dict[str, str]) -> str | None:
    prefix = f"x-{kind}-meta-"
    count = size = 0
    for key, value in meta.items():
        if key.lower().startswith(prefix) and value:
            count += 1
            size += len(key) - len(prefix) + len(value)
    if count > MAX_META_COUNT:
        return f"Too many metadata items; max {MAX_META_COUNT}"
    if size > MAX_META_OVERALL_SIZE:
        return f"Total metadata too large; max {MAX_META_OVERALL_SIZE}"
    return None


# -- account updates (container -> account) --------------------------------------

def account_update_headers(st: DbState, trans_id: str | None) -> dict[str, str]:
    row = container_row_of(st)
    hdrs = {"X-Backend-Type": "account", "X-Timestamp": row.timestamp.internal,
            "X-Put-Timestamp": row.put_timestamp.internal,
            "X-Delete-Timestamp": row.delete_timestamp.internal,
            "X-Object-Count": str(row.object_count), "X-Bytes-Used": str(row.bytes_used),
            "X-Stats-Timestamp": row.stats_timestamp.internal}
    if trans_id:
        hdrs["X-Trans-Id"] = trans_id
    return hdrs


async def send_account_updates(ctx: Any, st: DbState, trans_id: str | None = None) -> list[int]:
    """Send the container's row to every account target, concurrently, within
    ``container_update_timeout``; the status per target (0: no answer)."""
    statuses = [0] * len(st.account_targets)
    headers = account_update_headers(st, trans_id)
    path = f"/{st.ref.account}/{st.ref.container}"
    timeout = ctx.settings.container_update_timeout

    async def one(i: int, host: str, port: int, device: str, part: int) -> None:
        with trio.move_on_after(timeout):
            try:
                resp = await ctx.http.request("PUT", host, port, quote_path(f"/{device}/{part}{path}"),
                                              headers=headers, timeout=timeout)
                statuses[i] = resp.status
            except Exception as exc:  # network trouble: the reporter retries (dirty mark)
                log_event(ctx.logger, "account_update_failed", target=f"{host}:{port}/{device}",
                          path=path, error=repr(exc))

    async with trio.open_nursery() as nursery:
        for i, target in enumerate(st.account_targets):
            nursery.start_soon(one, i, *target)
    return statuses


def mark_reported(dbs: ListingDbs, txn: Any, st: DbState) -> None:
    dbs.clear_dirty(txn, st.ref, st.max_row, st.info)


# -- REPLICATE for listing databases ---------------------------------------------

def _summary_path(st: DbState) -> str:
    return st.ref.path


async def replicate(request: Request, ctx: Any, kind: str, p: BackendPath) -> Response:
    store = await store_for(ctx, p.drive)
    if p.account is None:
        states = await store.read(lambda dbs, txn: dbs.in_partition(txn, kind, p.partition))
        return _json(200, {_summary_path(s): s.summary() for s in states})
    if (kind == "container") != (p.container is not None) or p.obj is not None:
        return text(400, f"REPLICATE of {kind} databases takes /<d>/<p>"
                         f"{'/<a>/<c>' if kind == 'container' else '/<a>'}")
    ref = DbRef(kind, p.account, p.container)
    raw = await request.read(MAX_REPLICATE_BODY)
    try:
        body = json.loads(raw) if raw.strip() else {"op": "info"}
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
    except ValueError as exc:
        return text(400, f"REPLICATE body is not valid JSON: {exc}")
    op = body.get("op")
    try:
        if op == "info":
            st = await store.read(lambda dbs, txn: dbs.state(txn, ref))
            return not_found(None, kind) if st is None else _json(200, st.summary())
        if op == "rows_since":
            point, limit = int(body.get("point", 0)), min(int(body.get("limit", 1000)), 10_000)
            return await _rows_since(store, ref, kind, point, limit)
        if op == "merge":
            rows = [row_from_list(item) for item in body.get("rows", [])]
            info = info_from_dict(body["info"]) if body.get("info") else None
            changed, st = await store.write(ListingDbs.merge_rows, ref, p.partition, rows, info)
            return _json(200, {"changed": changed, "summary": st.summary()})
        if op == "sync_points":
            points = await store.read(lambda dbs, txn: dbs.sync_points(txn, ref))
            return _json(200, {"points": points})
        if op == "set_sync_point":
            await store.write(ListingDbs.set_sync_point, ref, str(body.get("remote", "")),
                              int(body.get("point", -1)))
            return _json(200, {"ok": True})
        if op == "reclaim":
            now = Timestamp.from_seconds(ctx.clock())
            n, st = await store.write(_reclaim_op, ref, now, ctx.settings.reclaim_age)
            return _json(200, {"reclaimed": n, "dropped": st is None,
                               "summary": st.summary() if st is not None else None})
        if op == "drop":
            await store.write(_drop_op, ref, str(body.get("hash", "")))
            return _json(200, {"dropped": True})
    except RowError as exc:
        return text(exc.status, str(exc))
    except (TypeError, ValueError, KeyError) as exc:
        return text(400, f"bad REPLICATE {op} request: {exc!r}")
    return text(400, f"unknown REPLICATE op {op!r} (info, rows_since, merge, sync_points, "
                     "set_sync_point, reclaim, drop)")


async def _rows_since(store: Any, ref: DbRef, kind: str, point: int, limit: int) -> Response:
    def read(dbs: ListingDbs, txn: Any) -> dict[str, Any] | None:
        st = dbs.state(txn, ref)
        if st is None:
            return None
        rows, new_point = dbs.rows_since(txn, st, point, limit)
        return {"rows": [_row_to_list(r) for r in rows], "point": new_point,
                "max_row": st.max_row, "hash": st.hash_hex, "info": st.summary()["info"]}

    out = await store.read(read)
    return not_found(None, kind) if out is None else _json(200, out)


def _reclaim_op(dbs: ListingDbs, txn: Any, ref: DbRef, now: Timestamp,
                reclaim_age: float) -> tuple[int, DbState | None]:
    st = dbs.state(txn, ref)
    if st is None:
        raise NotFound(f"{ref.kind} not found")
    left, n = dbs.reclaim_db(txn, st, now, reclaim_age)
    return n, left


def _drop_op(dbs: ListingDbs, txn: Any, ref: DbRef, expect_hash: str) -> None:
    st = dbs.state(txn, ref)
    if st is None:
        raise NotFound(f"{ref.kind} not found")
    if st.hash_hex != expect_hash:
        raise RowError(f"database changed since it was synced (hash {st.hash_hex})", status=409)
    dbs.drop(txn, st)


def _json(status: int, obj: Any) -> Response:
    return Response(status, [("Content-Type", "application/json")],
                    json.dumps(obj, separators=(",", ":")).encode())


def path_hash(ref: DbRef) -> str:
    return hashlib.md5(ref.path.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()
