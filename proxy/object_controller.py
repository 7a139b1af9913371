"""Object verbs: PUT/GET/HEAD/POST/DELETE on ``/v1/<a>/<c>/<o>``.

Contract (invariants 1, 2, 4, 5, 6):

- Every write gets a fresh timestamp from this proxy's ``TimestampSource``
  (strictly increasing, never behind one it has seen).
- PUT/POST/DELETE need the container to exist (404 otherwise, as Swift).
- PUT streams (``proxy.put``); each object node is told which container
  replica(s) to update (``X-Container-Host/Device/Partition``), the container
  replicas spread over the object nodes as Swift does, so every container
  replica gets one update per write.
- W (``write_consistency`` or ``X-Consistency``) 2xx answers acknowledge a
  write; otherwise 503 (or the 4xx a quorum of nodes gave, e.g. 422 for a
  wrong ETag).
- Reads: R = 1 by default, ``X-Consistency: quorum|all`` or ``X-Newest: true``
  read several replicas, serve the newest and repair the others in the
  background (``repair_object``).
"""

from __future__ import annotations

import email.utils
import math
import mimetypes
from collections.abc import Mapping

import trio

from common.http import BodyTimeout, ClientDisconnect, Request, Response, UpstreamError
from common.log import get_logger, log_event
from common.timestamp import Timestamp
from proxy import constraints
from proxy.app import ProxyApp, method_not_allowed, options_response, swift_status
from proxy.backend import BackendResponse, backend_path
from proxy.get import read_newest, read_one
from proxy.put import stream_put
from proxy.quorum import (
    ConsistencyError,
    Repair,
    parse_consistency,
    replicas_for,
    write_outcome,
)
from ring.ringfile import RingDevice

_log = get_logger("proxy.object")
METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT")
PERSISTED = (
    "content-type", "content-encoding", "content-disposition", "content-language", "cache-control",
    "expires", "x-robots-tag", "x-object-manifest", "x-static-large-object", "etag",
)
# user metadata, and sysmeta set by middlewares (clients' sysmeta is stripped by the gatekeeper)
FORWARDED_PREFIXES = ("x-object-meta-", "x-object-sysmeta-", "x-object-transient-sysmeta-")
SMALL_PUT = 65536  # bodies up to this size are read whole and sent in one write per node
READ_PASS = ("range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


def http_date(ts: Timestamp) -> str:
    return email.utils.formatdate(math.ceil(ts.seconds), usegmt=True)


def _levels(app: ProxyApp, request: Request, default: str) -> int | Response:
    try:
        level = parse_consistency(request.headers.get("x-consistency"), default)
    except ConsistencyError as exc:
        return Response.text(400, str(exc))
    return replicas_for(level, app.rings.object.replicas)


def spread_updates(targets: list[RingDevice], slots: int, part: int, prefix: str) -> list[dict[str, str]]:
    """Swift's spreading of container (or account) replicas over the object
    (or container) requests: replica i goes to request i % slots."""
    out: list[dict[str, str]] = [{} for _ in range(slots)]
    for i, node in enumerate(targets):
        h = out[i % slots]
        host = f"{node.address}:{node.port}"
        h[f"x-{prefix}-host"] = f"{h[f'x-{prefix}-host']},{host}" if f"x-{prefix}-host" in h else host
        h[f"x-{prefix}-device"] = f"{h[f'x-{prefix}-device']},{node.device}" if f"x-{prefix}-device" in h else node.device
        h[f"x-{prefix}-partition"] = str(part)
    return out


async def handle_object(app: ProxyApp, request: Request, account: str, container: str, obj: str) -> Response:
    method = request.method
    if method not in METHODS:
        return method_not_allowed(METHODS)
    if method == "OPTIONS":
        return options_response((*METHODS, "COPY"))  # COPY is served by the copy middleware
    problem = constraints.check_names(app.conf, account, container, obj, creating=method == "PUT")
    if problem is not None:
        return Response.text(*problem)
    denied = await app.authorize_container(request, account, container)
    if denied is not None:
        return denied
    ring = app.rings.object
    part, nodes = ring.get_nodes(account, container, obj)
    qs = f"?{request.query_string}" if request.query_string and method in ("GET", "HEAD") else ""

    def path_for(node: RingDevice) -> str:
        return backend_path(node, part, account, container, obj) + qs

    tid = app.trans_id(request)
    if method in ("GET", "HEAD"):
        r = _levels(app, request, app.conf.read_consistency)
        if isinstance(r, Response):
            return r
        headers = {"x-trans-id": tid}
        for name in READ_PASS:
            value = request.headers.get(name)
            if value is not None:
                # Swift tolerates linear whitespace inside a Range header
                headers[name] = "".join(value.split()) if name == "range" else value
        newest = (request.headers.get("x-newest") or "").lower() in ("true", "1", "yes", "on")
        if r == 1 and not newest:
            return await read_one(app.backend, app.node_iter(ring, part, nodes), len(nodes), method, path_for, headers)

        async def on_repair(answers: list[BackendResponse], chosen: int, plan: list[Repair]) -> None:
            await app.spawn(repair_object, app, part, account, container, obj, answers, chosen, plan, tid)

        return await read_newest(
            app.backend, app.node_iter(ring, part, nodes), len(nodes), r, method, path_for,
            {"x-trans-id": tid}, headers, on_repair,
        )
    info = await app.container_info(account, container, request)
    if not info.exists:
        return Response.text(404 if info.status == 404 else 503)
    w = _levels(app, request, app.conf.write_consistency)
    if isinstance(w, Response):
        return w
    if method == "PUT":
        return await _put(app, request, account, container, obj, part, nodes, path_for, w, tid)
    return await _post_or_delete(app, request, account, container, part, nodes, path_for, w, tid)


def _base_headers(app: ProxyApp, request: Request, tid: str) -> tuple[dict[str, str], Response | None]:
    h = request.headers
    out: dict[str, str] = {"x-trans-id": tid}
    for key, value in h.items():
        if key.startswith(FORWARDED_PREFIXES) or key in PERSISTED:
            out[key] = value.strip().strip('"') if key == "etag" else value
    at, problem = constraints.delete_at(h.get, app.clock())
    if problem is not None:
        return out, Response.text(*problem)
    if at is not None:
        out["x-delete-at"] = str(at)
    if_at = h.get("x-if-delete-at")
    if if_at is not None and not if_at.strip().isdigit():  # test_object test_delete_if_delete_at_bad
        return out, Response.text(400, "Bad X-If-Delete-At header value")
    problem = constraints.check_metadata(app.conf, h.items(), "object")
    if problem is not None:
        return out, Response.text(*problem)
    return out, None


def _container_updates(app: ProxyApp, account: str, container: str, slots: int) -> list[dict[str, str]]:
    cpart, cnodes = app.rings.container.get_nodes(account, container)
    return spread_updates(cnodes, slots, cpart, "container")


async def _put(
    app: ProxyApp, request: Request, account: str, container: str, obj: str, part: int,
    nodes: list[RingDevice], path_for: object, w: int, tid: str,
) -> Response:
    h = request.headers
    if not h.get("content-type") or (h.get("x-detect-content-type") or "").lower() == "true":
        h.set("content-type", mimetypes.guess_type(obj)[0] or "application/octet-stream")
    length = None if request.chunked or "content-length" not in h else request.content_length
    problem = constraints.check_object_creation(app.conf, length, request.chunked, obj, h.get("content-type"))
    if problem is not None:
        return Response.text(*problem)
    base, error = _base_headers(app, request, tid)
    if error is not None:
        return error
    inm = h.get("if-none-match")
    if inm is not None:
        # Swift's create-only PUT: only ``*`` is supported; 412 when it exists.
        if inm.strip() != "*":
            return Response.text(400, "If-None-Match only supports *")
        head = await read_one(app.backend, app.node_iter(app.rings.object, part, nodes), len(nodes), "HEAD",
                              path_for, {"x-trans-id": tid})  # type: ignore[arg-type]
        if 200 <= head.status < 300:
            return swift_status(412)
    n = len(nodes)
    updates = _container_updates(app, account, container, n)
    if length is not None and length <= SMALL_PUT:
        # Small bodies are read whole (bounded) and sent in one write per
        # node, so a node that fails is replaced by a handoff even mid-way.
        try:
            data = await request.read(SMALL_PUT)
        except (ClientDisconnect, BodyTimeout) as exc:
            return Response.text(exc.status, exc.message)
        ts = app.timestamps.next()
        base["x-timestamp"] = ts.internal
        answers = await app.backend.fan_out(
            app.node_iter(app.rings.object, part, nodes), n, "PUT", path_for,  # type: ignore[arg-type]
            lambda i: {**base, **updates[i]}, data, quorum=w,
        )
        outcome = write_outcome([a.status for a in answers], n, w)
        etag_list = [a.headers.get("etag", "") or "" for a in answers if a.status is not None and 200 <= a.status < 300]
        return _put_response(outcome.status, etag_list, ts, tid, "")
    ts = app.timestamps.next()
    base["x-timestamp"] = ts.internal
    result = await stream_put(
        app.backend,
        app.node_iter(app.rings.object, part, nodes),
        n,
        w,
        path_for,  # type: ignore[arg-type]
        lambda i: {**base, **updates[i]},
        request,
        length,
        app.conf.max_file_size,
    )
    if result.client_error is not None:
        return Response.text(result.outcome.status, str(result.client_error))
    return _put_response(result.outcome.status, result.etags, ts, tid, result.message)


def _put_response(status: int, etag_list: list[str], ts: Timestamp, tid: str, message: str) -> Response:
    if status == 201:
        etags = {e.strip('"') for e in etag_list if e}
        if len(etags) > 1:
            log_event(_log, "etag_mismatch", trans_id=tid, etags=sorted(etags))
            return Response.text(500, f"Object servers returned {len(etags)} mismatched etags")
        headers = {"last-modified": http_date(ts)}
        if etags:
            headers["etag"] = etags.pop()
        return swift_status(201, headers)
    if status == 503:
        return Response.text(503, message)
    return swift_status(status)


async def _post_or_delete(
    app: ProxyApp, request: Request, account: str, container: str, part: int,
    nodes: list[RingDevice], path_for: object, w: int, tid: str,
) -> Response:
    method = request.method
    if method == "POST":
        base, error = _base_headers(app, request, tid)
        if error is not None:
            return error
        base.pop("etag", None)
    else:
        base = {"x-trans-id": tid}
        if_delete_at = request.headers.get("x-if-delete-at")
        if if_delete_at is not None:
            if not if_delete_at.strip().isdigit():
                return Response.text(400, "Bad X-If-Delete-At header value")
            base["x-if-delete-at"] = if_delete_at.strip()
    ts = app.timestamps.next()
    base["x-timestamp"] = ts.internal
    n = len(nodes)
    # POST too: a POST that sets Content-Type updates the listing row (BACKEND_API)
    updates = _container_updates(app, account, container, n)
    answers = await app.backend.fan_out(
        app.node_iter(app.rings.object, part, nodes), n, method, path_for,  # type: ignore[arg-type]
        lambda i: {**base, **updates[i]},
    )
    post = method == "POST"
    outcome = write_outcome([a.status for a in answers], n, w, success=202 if post else 204,
                            superseded_accepted=post)
    if outcome.status == 503:
        return Response.text(503, f"{method}: {outcome.reason}")
    return swift_status(outcome.status)


# -- read repair -------------------------------------------------------------------
META_COPY = PERSISTED + ("x-delete-at",)


def _meta_headers(src: Mapping[str, str] | object) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in src.items():  # type: ignore[attr-defined]
        if key.startswith(FORWARDED_PREFIXES) or key in META_COPY:
            out[key] = value
    return out


async def repair_object(
    app: ProxyApp, part: int, account: str, container: str, obj: str,
    answers: list[BackendResponse], chosen: int, plan: list[Repair], tid: str,
) -> None:
    """Bring lagging replicas up to the chosen one (read repair). Failures are
    logged and left to the replicator; a repair never uses a timestamp other
    than the source's, so it cannot overwrite anything newer (409)."""
    src = answers[chosen]
    backend = app.backend
    meta_ts = src.headers.get("x-backend-timestamp") or src.headers.get("x-timestamp") or ""
    data_ts = src.headers.get("x-backend-data-timestamp") or src.headers.get("x-timestamp") or meta_ts
    for item in plan:
        node = answers[item.index].node
        path = backend_path(node, part, account, container, obj)
        try:
            if item.action == "delete":
                resp = await backend.request(node, "DELETE", path, {"x-timestamp": meta_ts, "x-trans-id": tid})
                status = resp.status
            elif item.action == "post":
                hdrs = {**_meta_headers(src.headers), "x-timestamp": meta_ts, "x-trans-id": tid}
                hdrs.pop("etag", None)
                status = (await backend.request(node, "POST", path, hdrs)).status
            else:
                status = await _copy_replica(app, src.node, node, path_src=backend_path(src.node, part, account, container, obj),
                                             path_dst=path, data_ts=data_ts, tid=tid)
                if status is not None and 200 <= status < 300 and meta_ts and meta_ts != data_ts:
                    hdrs = {**_meta_headers(src.headers), "x-timestamp": meta_ts, "x-trans-id": tid}
                    hdrs.pop("etag", None)
                    status = (await backend.request(node, "POST", path, hdrs)).status
        except (UpstreamError, trio.TooSlowError) as exc:
            status = None
            log_event(_log, "read_repair_failed", trans_id=tid, node=f"{node.address}:{node.port}/{node.device}", error=str(exc))
        log_event(_log, "read_repair", trans_id=tid, action=item.action, status=status,
                  node=f"{node.address}:{node.port}/{node.device}", timestamp=meta_ts)


async def _copy_replica(
    app: ProxyApp, src: RingDevice, dst: RingDevice, *, path_src: str, path_dst: str, data_ts: str, tid: str
) -> int | None:
    """Stream the source replica's bytes to the destination with the source's
    data timestamp and metadata (bounded chunks, invariant 4)."""
    backend = app.backend
    timeout = app.conf.node_timeout
    conn, status, headers = await backend.open(src, "GET", path_src, {"x-trans-id": tid})
    try:
        if status != 200:
            return None
        hdrs = _meta_headers(headers)
        hdrs.update({"x-timestamp": data_ts, "x-trans-id": tid, "content-length": headers.get("content-length", "0")})
        out = await backend.client.open(dst.address, dst.port, fresh=True)
        try:
            with trio.fail_after(timeout):
                await out.send_request("PUT", path_dst, list(hdrs.items()))
            while True:
                with trio.fail_after(timeout):
                    chunk = await conn.receive_chunk()
                if not chunk:
                    break
                with trio.fail_after(timeout):
                    await out.send_data(chunk)
            with trio.fail_after(timeout):
                await out.end_body()
                result, rh = await out.read_response()
                await out.read_body(1 << 20)
            backend.observe(rh)
            return result
        finally:
            await out.aclose()
    finally:
        await conn.aclose()
