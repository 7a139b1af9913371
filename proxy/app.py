"""``ProxyApp``: the Swift API v1 core behind the middleware pipeline.

Routing ``/v1/<account>[/<container>[/<object>]]`` to the account, container
and object controllers, after the checks every request gets (Swift's
``handle_request``): a path that is not valid UTF-8 or holds NUL -> 412, an
unknown API version -> 400, a verb the resource does not have -> 405.

Authorization (invariant 6) is Swift's: ``request.context['authorize']``
(set by tempauth) is called first without container info; when it refuses,
the container's info (with ``X-Container-Read``/``-Write``) is fetched and it
is asked again, exactly as Swift's ``delay_denial`` controllers do. No
authorize callback in the context means no auth middleware: allowed.

Container and account info (existence, ACLs, counts) are cached in-process
for ``recheck_*_existence`` seconds on the injected clock when they exist
(never a 404) and dropped on this proxy's own writes to them.

Background work (read repair) runs in the nursery the server hands over via
``bind_nursery``; without one it runs inline.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from common.http import Headers, HTTPClient, Request, Response
from common.log import new_trans_id
from common.timestamp import TimestampSource
from proxy import constraints
from proxy.backend import Backend, backend_path
from proxy.config import ProxyConfig
from proxy.get import read_one
from proxy.node_iter import ErrorLimiter, NodeIter
from ring.lookup import Ring
from ring.ringfile import RingDevice


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """What the proxy knows of a container (Swift's ``container_info``)."""

    status: int
    read_acl: str | None = None
    write_acl: str | None = None
    object_count: int = 0
    bytes: int = 0
    headers: Headers = field(default_factory=Headers)

    @property
    def exists(self) -> bool:
        return 200 <= self.status < 300

    def get(self, key: str, default: Any = None) -> Any:
        if key in ("read_acl", "write_acl", "status", "object_count", "bytes", "headers"):
            return getattr(self, key)
        return self.headers.get(key.lower(), default)


@dataclass(frozen=True, slots=True)
class AccountInfo:
    status: int
    headers: Headers = field(default_factory=Headers)

    @property
    def exists(self) -> bool:
        return 200 <= self.status < 300


@dataclass(slots=True)
class Rings:
    account: Ring
    container: Ring
    object: Ring


class ProxyApp:
    """The innermost app of the pipeline (see module docstring)."""

    def __init__(
        self,
        conf: ProxyConfig,
        rings: Rings,
        *,
        client: HTTPClient | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conf = conf
        self.rings = rings
        self.clock = clock
        self.monotonic = monotonic
        self.client = client or HTTPClient(connect_timeout=conf.conn_timeout)
        self.limiter = ErrorLimiter(conf.error_suppression_limit, conf.error_suppression_interval, monotonic)
        self.timestamps = TimestampSource(clock)
        self.backend = Backend(conf, self.client, self.limiter, self.timestamps)
        self._container_cache: dict[tuple[str, str], tuple[float, ContainerInfo]] = {}
        self._account_cache: dict[str, tuple[float, AccountInfo]] = {}
        self._nursery: trio.Nursery | None = None

    # -- plumbing -----------------------------------------------------------
    def bind_nursery(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    async def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run background work (read repair) without delaying the client."""
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)
        else:
            await fn(*args)

    def node_iter(self, ring: Ring, part: int, primaries: list[RingDevice]) -> NodeIter:
        return NodeIter(
            primaries,
            ring.get_more_nodes(part),
            self.limiter,
            max_nodes=self.conf.request_node_count_factor * max(1, len(primaries)),
        )

    @staticmethod
    def trans_id(request: Request) -> str:
        tid = request.context.get("trans_id")
        if not tid:
            tid = request.headers.get("x-trans-id") or new_trans_id()
            request.context["trans_id"] = tid
        return str(tid)

    # -- authorization ----------------------------------------------------------
    async def authorize(self, request: Request, info: Any) -> Response | None:
        authorize = request.context.get("authorize")
        if authorize is None:
            return None
        result = authorize(request, info)
        if inspect.isawaitable(result):
            result = await result
        return result  # type: ignore[no-any-return]

    async def authorize_container(self, request: Request, account: str, container: str) -> Response | None:
        """Swift's delay_denial: ask without info, then with the container's ACLs."""
        if await self.authorize(request, None) is None:
            return None
        info = await self.container_info(account, container, request)
        return await self.authorize(request, info)

    # -- cached info --------------------------------------------------------------
    async def container_info(self, account: str, container: str, request: Request | None = None) -> ContainerInfo:
        key = (account, container)
        now = self.monotonic()
        hit = self._container_cache.get(key)
        if hit is not None and hit[0] > now:
            info = hit[1]
        else:
            ring = self.rings.container
            part, nodes = ring.get_nodes(account, container)
            headers = {"x-trans-id": self.trans_id(request) if request is not None else new_trans_id()}
            resp = await read_one(
                self.backend,
                self.node_iter(ring, part, nodes),
                len(nodes),
                "HEAD",
                lambda n: backend_path(n, part, account, container),
                headers,
                "container",
            )
            h = resp.headers
            info = ContainerInfo(
                resp.status,
                h.get("x-container-read"),
                h.get("x-container-write"),
                _int(h.get("x-container-object-count")),
                _int(h.get("x-container-bytes-used")),
                h,
            )
            if info.exists:
                # Only positive answers are cached: another worker (or proxy)
                # may create the container any moment, and a cached 404 would
                # refuse writes to it.
                self._container_cache[key] = (now + self.conf.recheck_container_existence, info)
        if request is not None:
            request.context["container_info"] = info
        return info

    def invalidate_container(self, account: str, container: str) -> None:
        self._container_cache.pop((account, container), None)

    async def account_info(self, account: str, request: Request | None = None) -> AccountInfo:
        now = self.monotonic()
        hit = self._account_cache.get(account)
        if hit is not None and hit[0] > now:
            return hit[1]
        ring = self.rings.account
        part, nodes = ring.get_nodes(account)
        headers = {"x-trans-id": self.trans_id(request) if request is not None else new_trans_id()}
        resp = await read_one(
            self.backend,
            self.node_iter(ring, part, nodes),
            len(nodes),
            "HEAD",
            lambda n: backend_path(n, part, account),
            headers,
            "account",
        )
        info = AccountInfo(resp.status, resp.headers)
        if info.exists:
            self._account_cache[account] = (now + self.conf.recheck_account_existence, info)
        return info

    def invalidate_account(self, account: str) -> None:
        self._account_cache.pop(account, None)

    # -- entry point ---------------------------------------------------------------
    async def __call__(self, request: Request) -> Response:
        problem = constraints.check_utf8_path(request.path)
        if problem is not None:
            return Response.text(*problem)
        if request.content_length is not None and request.content_length < 0:
            return Response.text(400, "Invalid Content-Length")
        parts = constraints.split_api_path(request.path)
        if isinstance(parts[0], int):
            return Response.text(parts[0], str(parts[1]))
        _version, account, container, obj = parts  # type: ignore[misc]
        assert isinstance(account, str)
        self.trans_id(request)
        if obj is not None and container is not None:
            from proxy.object_controller import handle_object

            return await handle_object(self, request, account, container, obj)
        if container is not None:
            from proxy.container_controller import handle_container

            return await handle_container(self, request, account, container)
        from proxy.account_controller import handle_account

        return await handle_account(self, request, account)

    async def aclose(self) -> None:
        await self.client.aclose()


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


POLICY_NAME = "Policy-0"  # the one storage policy (see /info)
SWIFT_BODIES = {
    202: "The request is accepted for processing.",
    422: "Unable to process the contained instructions",
}


def swift_status(status: int, headers: Any = None) -> Response:
    """A body-less status answer shaped as Swift's (swob) default response."""
    if status in (201, 204):
        resp = Response(status, headers)
        resp.headers.set("content-type", "text/html; charset=UTF-8")
        return resp
    if status in SWIFT_BODIES:
        from common.http import REASONS

        body = f"<html><h1>{REASONS.get(status, '')}</h1><p>{SWIFT_BODIES[status]}</p></html>"
        resp = Response(status, headers, body.encode())
        resp.headers.set("content-type", "text/html; charset=UTF-8")
        return resp
    return Response.text(status, headers=headers)


def method_not_allowed(allowed: tuple[str, ...]) -> Response:
    return Response.text(405, headers={"allow": ", ".join(allowed)})


def options_response(allowed: tuple[str, ...]) -> Response:
    """OPTIONS without CORS configured: the allowed verbs (Swift answers 200)."""
    return Response(200, {"allow": ", ".join(allowed), "content-length": "0"}, b"")
