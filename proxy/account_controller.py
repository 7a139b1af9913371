"""Account verbs on ``/v1/<a>``, against the account ring.

GET/HEAD list containers with the same read rules as containers. With
``account_autocreate`` an account that does not exist yet reads as an empty
one (Swift answers 204/``[]`` rather than 404) and a POST creates it first.
PUT/DELETE of accounts are reseller operations Swift only offers with
``allow_account_management``; they answer 405 here.
"""

from __future__ import annotations

import email.utils
import json

from common.http import Request, Response
from proxy import constraints
from proxy.app import ProxyApp, method_not_allowed, options_response, swift_status
from proxy.backend import backend_path
from proxy.container_controller import create_account, read_listing, write_headers
from proxy.quorum import best_response, quorum_size

METHODS = ("GET", "HEAD", "OPTIONS", "POST")
WRITE_PREFIXES = ("x-account-", "x-remove-account-")


def listing_format(request: Request) -> str:
    fmt = (request.query.get("format") or "").lower()
    if fmt in ("json", "xml", "plain"):
        return fmt
    accept = (request.headers.get("accept") or "").lower()
    if "application/json" in accept:
        return "json"
    if "xml" in accept:
        return "xml"
    return "plain"


def empty_account(request: Request, account: str, ts: str) -> Response:
    """What Swift answers for an account that autocreate would create."""
    headers = {
        "x-account-container-count": "0",
        "x-account-object-count": "0",
        "x-account-bytes-used": "0",
        "x-timestamp": ts,
        "x-put-timestamp": ts,
    }
    fmt = listing_format(request)
    if fmt == "json":
        headers["content-type"] = "application/json; charset=utf-8"
        body = json.dumps([]).encode()
    elif fmt == "xml":
        headers["content-type"] = "application/xml; charset=utf-8"
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<account name="{_xml(account)}"></account>'.encode()
    else:
        headers["content-type"] = "text/plain; charset=utf-8"
        headers["content-length"] = "0"  # Swift's 204 says so (test_account test_GET_HEAD_content_type)
        return Response(204, headers, b"")
    if request.method == "HEAD":  # any format: 204, as test_account test_GET_HEAD_content_type expects
        headers["content-length"] = "0"
        return Response(204, headers, b"")
    return Response(200, headers, body)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


async def handle_account(app: ProxyApp, request: Request, account: str) -> Response:
    method = request.method
    if method not in METHODS:
        return method_not_allowed(METHODS)
    if method == "OPTIONS":
        return options_response(METHODS)
    problem = constraints.check_names(app.conf, account, None, None, creating=False)
    if problem is not None:
        return Response.text(*problem)
    denied = await app.authorize(request, None)
    if denied is not None:
        return denied
    tid = app.trans_id(request)
    if method in ("GET", "HEAD"):
        resp = await read_listing(app, request, "account", account, None, app.conf.account_listing_limit)
        if resp.status == 404 and app.conf.account_autocreate:
            return empty_account(request, account, app.timestamps.next().normal)
        if resp.status == 404:
            resp.headers.set("date", email.utils.formatdate(usegmt=True))
        return resp
    problem = constraints.check_metadata(app.conf, request.headers.items(), "account")
    if problem is not None:
        return Response.text(*problem)
    ring = app.rings.account
    part, nodes = ring.get_nodes(account)
    n = len(nodes)
    for attempt in (0, 1):
        base = write_headers(request, tid, WRITE_PREFIXES)
        base["x-timestamp"] = app.timestamps.next().internal
        answers = await app.backend.fan_out(
            app.node_iter(ring, part, nodes), n, "POST",
            lambda node: backend_path(node, part, account), lambda i, base=base: base,
        )
        statuses = [a.status for a in answers]
        idx = best_response(statuses, quorum_size(n))
        if idx is None:
            return Response.text(503, "no quorum among the account replicas")
        status = statuses[idx]
        assert status is not None
        if status == 404 and attempt == 0 and app.conf.account_autocreate:
            if not await create_account(app, account, tid):
                return Response.text(503, "could not create the account")
            continue
        app.invalidate_account(account)
        return swift_status(status)
    return Response.text(503)
