"""Container verbs on ``/v1/<a>/<c>``, against the container ring.

Contract (invariants 2, 5, 6): reads follow the object rules (R = 1 with
failover and the 404-only-when-proven rule; ``X-Newest`` / ``X-Consistency``
read several replicas and serve the newest). Writes fan out to every replica
(handoffs replacing errors) with a fresh timestamp, tell each container
replica which account replica(s) to update (``X-Account-*``), and answer with
Swift's ``best_response`` over a quorum, 503 when no status class has one.
The first container PUT in an account creates the account when
``account_autocreate`` is on (Swift's setting; on by default here so
``swift upload`` works on a fresh account).
"""

from __future__ import annotations

from common.http import Request, Response
from proxy import constraints
from proxy.app import POLICY_NAME, ProxyApp, method_not_allowed, options_response, swift_status
from proxy.backend import backend_path
from proxy.get import read_newest, read_one
from proxy.object_controller import spread_updates
from proxy.quorum import (
    ConsistencyError,
    best_response,
    parse_consistency,
    quorum_size,
    replicas_for,
)
from ring.ringfile import RingDevice

METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT")
LISTING_PASS = ("accept",)
WRITE_PREFIXES = ("x-container-", "x-remove-container-", "x-versions-", "x-remove-versions-", "x-history-")


def write_headers(request: Request, tid: str, prefixes: tuple[str, ...]) -> dict[str, str]:
    out = {"x-trans-id": tid}
    for key, value in request.headers.items():
        if key.startswith(prefixes) or key == "content-type":
            out[key] = value
    return out


async def create_account(app: ProxyApp, account: str, tid: str) -> bool:
    """Account autocreate: PUT the account on its ring (quorum)."""
    ring = app.rings.account
    part, nodes = ring.get_nodes(account)
    ts = app.timestamps.next().internal
    answers = await app.backend.fan_out(
        app.node_iter(ring, part, nodes), len(nodes), "PUT",
        lambda n: backend_path(n, part, account), lambda i: {"x-timestamp": ts, "x-trans-id": tid},
    )
    app.invalidate_account(account)
    ok = sum(1 for a in answers if a.status is not None and 200 <= a.status < 300)
    return ok >= quorum_size(len(nodes))


async def read_listing(
    app: ProxyApp, request: Request, ring_name: str, account: str, container: str | None, limit: int
) -> Response:
    """GET/HEAD of an account or container, with consistency options."""
    problem = constraints.check_listing_limit(request.query, limit)
    if problem is not None:
        return Response.text(*problem)
    ring = getattr(app.rings, ring_name)
    part, nodes = ring.get_nodes(account, container)
    # HEAD passes the query too: ?format= picks the Content-Type (test_container test_GET_HEAD_content_type)
    forwarded = constraints.listing_query(request.query) if request.query_string else ""
    qs = f"?{forwarded}" if forwarded else ""

    def path_for(node: RingDevice) -> str:
        return backend_path(node, part, account, container) + qs

    tid = app.trans_id(request)
    headers = {"x-trans-id": tid}
    for name in LISTING_PASS:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    try:
        r = replicas_for(parse_consistency(request.headers.get("x-consistency"), app.conf.read_consistency), len(nodes))
    except ConsistencyError as exc:
        return Response.text(400, str(exc))
    newest = (request.headers.get("x-newest") or "").lower() in ("true", "1", "yes", "on")
    it = app.node_iter(ring, part, nodes)
    if r == 1 and not newest:
        resp = await read_one(app.backend, it, len(nodes), request.method, path_for, headers, ring_name)
    else:
        resp = await read_newest(
            app.backend, it, len(nodes), r, request.method, path_for, {"x-trans-id": tid}, headers, None, ring_name
        )
    if 200 <= resp.status < 300:
        resp.headers.set("accept-ranges", "bytes")
        if "format" not in request.query:
            resp.headers.set("vary", "Accept")
        if resp.status == 204 or request.method == "HEAD":
            resp.headers.set("content-length", resp.headers.get("content-length") or "0")
    return resp


async def handle_container(app: ProxyApp, request: Request, account: str, container: str) -> Response:
    method = request.method
    if method not in METHODS:
        return method_not_allowed(METHODS)
    if method == "OPTIONS":
        return options_response(METHODS)
    problem = constraints.check_names(app.conf, account, container, None, creating=method == "PUT")
    if problem is not None:
        bad = Response.text(*problem)
        if method == "PUT":  # Swift's HTTPBadRequest keeps swob's default type (test_container test_long_name_content_type)
            bad.headers.set("content-type", "text/html; charset=UTF-8")
        return bad
    denied = await app.authorize_container(request, account, container)
    if denied is not None:
        return denied
    if method in ("GET", "HEAD"):
        resp = await read_listing(app, request, "container", account, container, app.conf.container_listing_limit)
        if 200 <= resp.status < 300:
            resp.headers.set("x-storage-policy", POLICY_NAME)
        return resp
    tid = app.trans_id(request)
    if method in ("PUT", "POST"):
        problem = constraints.check_metadata(app.conf, request.headers.items(), "container")
        if problem is not None:
            return Response.text(*problem)
    if method in ("PUT", "POST") and any(
        (request.headers.get(h) or "").strip() for h in ("x-versions-location", "x-history-location")
    ):  # an empty value (removal) is fine; no object versioning yet: refuse, as Swift's versioned_writes when disabled (its tests then skip)
        return Response.text(412, "Versioned Writes is disabled")
    policy = request.headers.get("x-storage-policy")
    if method == "PUT" and policy and policy.strip().lower() != POLICY_NAME.lower():
        # test_container test_error_invalid_storage_policy_name
        return Response.text(400, f"Invalid X-Storage-Policy {policy!r}")
    if method == "PUT":
        info = await app.account_info(account, request)
        if info.status == 404:
            if not app.conf.account_autocreate:
                return Response.text(404)
            if not await create_account(app, account, tid):
                return Response.text(503, "could not create the account")
        elif not info.exists:
            return Response.text(503)
    ring = app.rings.container
    part, nodes = ring.get_nodes(account, container)
    base = write_headers(request, tid, WRITE_PREFIXES) if method != "DELETE" else {"x-trans-id": tid}
    base["x-timestamp"] = app.timestamps.next().internal
    n = len(nodes)
    if method in ("PUT", "DELETE"):
        apart, anodes = app.rings.account.get_nodes(account)
        updates = spread_updates(anodes, n, apart, "account")
    else:
        updates = [{}] * n
    answers = await app.backend.fan_out(
        app.node_iter(ring, part, nodes), n, method,
        lambda node: backend_path(node, part, account, container), lambda i: {**base, **updates[i]},
    )
    app.invalidate_container(account, container)
    statuses = [a.status for a in answers]
    idx = best_response(statuses, quorum_size(n))
    if idx is None:
        return Response.text(503, f"no quorum among the container replicas for {method}")
    chosen = answers[idx]
    status = chosen.status
    assert status is not None
    return swift_status(status)
