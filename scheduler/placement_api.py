"""The Placement HTTP application: routing, microversions, auth, errors.

``PlacementApp(store, policy).handle`` is a ``common.http`` handler. Per
request: parse the microversion (400 malformed, 406 unsupported), match the
route (404), authenticate (401; ``/`` needs no token), check the method (405
with ``Allow``), run the handler, and answer with ``OpenStack-API-Version``
and ``Vary`` on every response, ``last-modified`` and ``cache-control:
no-cache`` from 1.15 on responses that carry a representation, and
Placement's JSON error documents (``code`` from 1.23) for every error.

``GET /allocation_candidates`` is served by
``scheduler.candidates_api.handle_allocation_candidates(request, store,
version)`` (owned by the candidates engineer), imported lazily; it receives
the ``Ctx`` (query string, headers, auth) and returns a ``Reply``.
Every ``/scheduler/...`` path goes, after authentication, to
``scheduler.nova_api.handle(app, ctx)`` (the Nova-like scheduler).
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from typing import Any

from common.http import Request, Response

from . import _api_allocations as allocs
from . import _api_classes_traits as ct
from . import _api_inventories as inv
from . import _api_providers as rps
from ._api_common import Ctx, Reply, error_document, http_date
from ._api_cors import CorsConfig, preflight_headers, request_headers
from ._api_policy import authenticate, enforce
from ._store_records import PlacementError
from .microversion import (
    MAX_VERSION,
    MIN_VERSION,
    MicroversionError,
    Version,
    header_value,
    version_from_headers,
)
from .store import PlacementStore

_REASONS = {200: "OK", 201: "Created", 204: "No Content"}
HandlerFn = Callable[..., Awaitable[Reply]]
_log = logging.getLogger("ringstack.placement")
MAX_BODY = 64 * 1024 * 1024


async def _root(app: PlacementApp, ctx: Ctx) -> Reply:
    return Reply(200, {"versions": [{
        "id": "v1.0", "max_version": str(MAX_VERSION), "min_version": str(MIN_VERSION),
        "status": "CURRENT", "links": [{"rel": "self", "href": ""}]}]})


async def _delegate(module_name: str, func: str, app: PlacementApp, ctx: Ctx) -> Reply:
    """Hand the request to a module owned by the scheduler engineer (lazy import;
    501 while it does not exist)."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise PlacementError(501, f"{module_name} is not available") from None
    result = await getattr(module, func)(app, ctx)
    return result if isinstance(result, Reply) else Reply(200, result)


async def _candidates(app: PlacementApp, ctx: Ctx) -> Reply:
    try:
        module = importlib.import_module("scheduler.candidates_api")
    except ModuleNotFoundError as exc:
        if exc.name != "scheduler.candidates_api":
            raise
        raise PlacementError(501, "allocation candidates are not available") from None
    app.enforce(ctx, "placement:allocation_candidates:list")
    result = await module.handle_allocation_candidates(ctx, app.store, ctx.version)
    return result if isinstance(result, Reply) else Reply(200, result)


_UUID = r"(?P<uuid>[^/]+)"
ROUTES: list[tuple[re.Pattern[str], dict[str, Any]]] = [  # method -> HandlerFn
    (re.compile(p + r"/?$" if p != "/" else r"^/$"), m) for p, m in [
        ("/", {"GET": _root}),
        ("^/resource_providers", {"GET": rps.list_providers, "POST": rps.create_provider}),
        ("^/resource_providers/" + _UUID, {"GET": rps.get_provider,
                                            "DELETE": rps.delete_provider,
                                            "PUT": rps.update_provider}),
        ("^/resource_classes", {"GET": ct.list_classes, "POST": ct.create_class}),
        ("^/resource_classes/(?P<name>[^/]+)", {"GET": ct.get_class, "PUT": ct.put_class,
                                                "DELETE": ct.delete_class}),
        ("^/resource_providers/" + _UUID + "/inventories",
         {"GET": inv.get_inventories, "POST": inv.create_inventory, "PUT": inv.set_inventories,
          "DELETE": inv.delete_inventories}),
        ("^/resource_providers/" + _UUID + "/inventories/(?P<rc>[^/]+)",
         {"GET": inv.get_inventory, "PUT": inv.update_inventory, "DELETE": inv.delete_inventory}),
        ("^/resource_providers/" + _UUID + "/usages", {"GET": inv.get_usages}),
        ("^/resource_providers/" + _UUID + "/aggregates",
         {"GET": rps.get_aggregates, "PUT": rps.set_aggregates}),
        ("^/resource_providers/" + _UUID + "/allocations", {"GET": allocs.provider_allocations}),
        ("^/resource_providers/" + _UUID + "/traits",
         {"GET": ct.get_provider_traits, "PUT": ct.set_provider_traits,
          "DELETE": ct.delete_provider_traits}),
        ("^/allocations", {"POST": allocs.post_allocations}),
        ("^/allocations/(?P<consumer>[^/]+)", {"GET": allocs.get_allocations,
                                               "PUT": allocs.put_allocations,
                                               "DELETE": allocs.delete_allocations}),
        ("^/allocation_candidates", {"GET": _candidates}),
        ("^/traits", {"GET": ct.list_traits}),
        ("^/traits/(?P<name>[^/]+)", {"GET": ct.get_trait, "PUT": ct.put_trait,
                                      "DELETE": ct.delete_trait}),
        ("^/usages", {"GET": allocs.project_usages}),
        ("^/reshaper", {"POST": allocs.reshape}),
    ]
]


class PlacementApp:
    """The application; ``policy`` is ``legacy`` or ``secure-rbac``."""

    def __init__(self, store: PlacementStore, policy: str = "legacy",
                 cors: CorsConfig | None = None) -> None:
        self.store = store
        self.policy = policy
        self.cors = cors  # None: no CORS filter (OPTIONS is 405), as Placement

    def enforce(self, ctx: Ctx, action: str, target_project: str | None = None) -> None:
        enforce(self.policy, action, ctx.auth, target_project)

    async def handle(self, request: Request) -> Response:
        """The app, wrapped in CORS when configured (oslo.middleware's rules)."""
        resp = await self._handle(request)
        if self.cors is None or request.headers.get("origin") is None:
            return resp
        headers = {k.lower(): v for k, v in request.headers.items()}
        if request.method == "OPTIONS":
            if not 200 <= resp.status < 300:
                resp = Response(200, [], b"", reason="OK")
            extra = preflight_headers(self.cors, headers)
        else:
            extra = request_headers(self.cors, headers, resp.headers.get("vary"))
        for name, value in extra:
            resp.headers.set(name, value)
        return resp

    async def _handle(self, request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        request_id = f"req-{uuidlib.uuid4()}"
        version: Version = MIN_VERSION
        try:
            version = version_from_headers(headers)
        except MicroversionError as exc:
            extra = ({"max_version": str(MAX_VERSION), "min_version": str(MIN_VERSION)}
                     if exc.status == 406 else None)
            return self._error(headers, exc.status, exc.message, "placement.undefined_code",
                               request_id, version, extra)
        try:
            _check_content_headers(headers)
            body = await request.read(MAX_BODY) if request.method in ("PUT", "POST") else b""
            ctx = Ctx(request.method, request.path, request.query_string, headers, body, version)
            reply = await self._dispatch(ctx)
        except PlacementError as exc:
            extra_headers = getattr(exc, "headers", None)
            resp = self._error(headers, exc.status, exc.detail, exc.code, request_id, version,
                               method=request.method)
            for k, v in extra_headers or ():
                resp.headers.set(k, v)
            return resp
        except Exception:
            _log.exception("placement handler failed")
            return self._error(headers, 500, "An unexpected error occurred.",
                               "placement.undefined_code", request_id, version)
        return self._reply(reply, version, request_id, ctx)

    async def _dispatch(self, ctx: Ctx) -> Reply:
        if ctx.path.startswith("/scheduler/"):  # the Nova-like scheduler (scheduler.nova_api)
            ctx.auth = authenticate(ctx.headers)
            return await importlib.import_module("scheduler.nova_api").handle(self, ctx)  # type: ignore[no-any-return]
        for pattern, methods in ROUTES:
            m = pattern.match(ctx.path)
            if m is None:
                continue
            if ctx.path != "/":
                ctx.auth = authenticate(ctx.headers)
            fn = methods.get(ctx.method)
            if fn is None:
                err = PlacementError(405, "The method specified is not allowed for this "
                                     "resource.")
                err.headers = [("allow", ", ".join(methods))]  # type: ignore[attr-defined]
                raise err
            ctx.params = {k: v for k, v in m.groupdict().items() if v is not None}
            if ctx.method == "GET" and not _accepts_json(ctx.headers.get("accept")):
                raise PlacementError(406, "Only application/json is provided")
            return await fn(self, ctx)
        raise PlacementError(404, "The resource could not be found.")

    def _reply(self, reply: Reply, version: Version, request_id: str, ctx: Ctx) -> Response:
        headers: list[tuple[str, str]] = [
            ("openstack-api-version", header_value(version)),
            ("vary", "openstack-api-version"),
            ("openstack-request-id", request_id),
            ("x-openstack-request-id", request_id),
        ]
        body = b""
        if reply.body is not None:
            body = (reply.body if isinstance(reply.body, bytes)  # pre-encoded JSON
                    else json.dumps(reply.body).encode())
            headers.append(("content-type", "application/json"))
        cache = reply.cache if reply.cache is not None else (
            reply.body is not None and ctx.method != "DELETE")
        if cache and version.at_least(15):
            headers.append(("last-modified", http_date(reply.last_modified)))
            headers.append(("cache-control", "no-cache"))
        host = ctx.headers.get("host")
        for name, value in reply.headers:
            if name == "location" and host and value.startswith("/"):
                value = f"http://{host}{value}"  # absolute, as webob makes it
            headers.append((name, value))
        return Response(reply.status, headers, body, reason=_REASONS.get(reply.status, ""))

    def _error(self, headers: dict[str, str], status: int, detail: str, code: str,
               request_id: str, version: Version,
               extra: dict[str, Any] | None = None, method: str = "") -> Response:
        accept = headers.get("accept", "application/json")
        base = [("openstack-api-version", header_value(version)),
                ("vary", "openstack-api-version"),
                ("openstack-request-id", request_id), ("x-openstack-request-id", request_id)]
        if "json" not in accept and ("text/html" in accept or "text/plain" in accept):
            ctype = "text/html" if "text/html" in accept else "text/plain"
            text = f"{status} {_title(status)}\n\n{detail}\n"
            return Response(status, [*base, ("content-type", f"{ctype}; charset=UTF-8")],
                            text.encode(), reason=_title(status))
        explanation = (f"The method {method} is not allowed for this resource."
                       if status == 405 else None)
        body = error_document(status, detail, code, request_id, version, extra, explanation)
        return Response(status, [*base, ("content-type", "application/json")], body,
                        reason=_title(status))


def _check_content_headers(headers: dict[str, str]) -> None:
    """As Placement: a body needs a content type; content-length must be an int."""
    clen = headers.get("content-length")
    if not clen:
        return
    try:
        length = int(clen)
    except ValueError:
        raise PlacementError(400, "content-length header must be an integer") from None
    if length > 0 and not headers.get("content-type"):
        raise PlacementError(400, "content-type header required when content-length > 0")


def _accepts_json(accept: str | None) -> bool:
    """Placement serves only JSON: an Accept header must allow it."""
    if not accept:
        return True
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        if media.strip().lower() in ("application/json", "application/*", "*/*", ""):
            q = params.replace(" ", "")
            if "q=0" in q and not q.startswith("q=0."):
                continue
            return True
    return False


def _title(status: int) -> str:
    from ._api_common import TITLES

    return TITLES.get(status, "Error")


def make_app(store: PlacementStore, policy: str = "legacy",
             cors: CorsConfig | None = None) -> PlacementApp:
    return PlacementApp(store, policy, cors)
