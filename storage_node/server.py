"""The storage server: one trio HTTP server per node serving every drive.

Dispatch (BACKEND_API.md "Which server a request is for"): by path depth,
unless ``X-Backend-Type`` says otherwise; replication verbs (``REPLICATE``,
``SUFFIXES``, ``MERGE``, ``OBJECTS``, ``DROP``) go to ``replicate`` for
objects and to the container/account servers when ``X-Backend-Type`` names
them. ``/healthcheck`` and ``/metrics`` (Prometheus text) answer on the same
port. Every request gets one structured log line with its ``X-Trans-Id``
(logged when the handler returns, before a streamed body is sent).

Errors are mapped once, here: ``DriveUnavailable`` -> 507 (that drive only),
``BadPath`` -> 400, anything with a ``status`` hint -> that status with the
message as a plain-text body.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from common.config import ClusterConfig
from common.http import (
    HTTPClient,
    HTTPError,
    PumpStats,
    Request,
    Response,
    is_valid_utf8,
    serve_http,
)
from common.log import get_logger, log_event, new_trans_id
from storage_node import object_server, replicate
from storage_node.context import NodeContext, StorageSettings, make_pools
from storage_node.drive import DiskDrives, DriveLayer, DriveUnavailable
from storage_node.object_core import ObjectError
from storage_node.paths import BadPath, split_backend_path

REPLICATION_VERBS = frozenset({"REPLICATE", "SUFFIXES", "MERGE", "OBJECTS", "DROP", "PARTITIONS"})
RoleHandler = Callable[[Request, NodeContext], Awaitable[Response]]


def settings_from_config(config: ClusterConfig) -> StorageSettings:
    """``[storage]`` -> ``StorageSettings`` (unknown keys are ignored here;
    ``drives``/``port``/``workers`` are read by the CLI)."""
    sec = config.section("storage")
    fields = StorageSettings.__dataclass_fields__
    kwargs: dict[str, Any] = {}
    for k, v in sec.items():
        if k in fields:
            kwargs[k] = type(getattr(StorageSettings(), k))(v)
    return StorageSettings(**kwargs)


class _Metrics:
    def __init__(self, ctx: NodeContext) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ringstack_storage_requests", "Requests served", ["role", "method", "status"],
                                registry=self.registry)
        self.latency = Histogram("ringstack_storage_request_seconds", "Time to first response byte",
                                 ["role", "method"], registry=self.registry,
                                 buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
        Gauge("ringstack_storage_quarantined", "Objects quarantined by this process",
              registry=self.registry).set_function(lambda: object_server.Counters.quarantined)
        Gauge("ringstack_storage_lost_files", "Data files found missing behind the index",
              registry=self.registry).set_function(lambda: object_server.Counters.lost_files)
        Gauge("ringstack_storage_pumped_bodies", "Request bodies read in a worker thread straight from the socket",
              registry=self.registry).set_function(lambda: PumpStats.bodies)
        batches = Gauge("ringstack_storage_group_commit_batches", "LMDB group-commit transactions",
                        ["drive"], registry=self.registry)
        ops = Gauge("ringstack_storage_group_commit_ops", "Writers committed through group commit",
                    ["drive"], registry=self.registry)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        for d in ctx.drives:
            batches.labels(d).set_function(partial(lambda d: ctx.committers[d].batches if d in ctx.committers else 0, d))
            ops.labels(d).set_function(partial(lambda d: ctx.committers[d].ops if d in ctx.committers else 0, d))


    def observe(self, role: str, method: str, status: int, seconds: float) -> None:
        key = (role, method, status)
        pair = self._children.get(key)
        if pair is None:  # labels() costs ~15 us a call: keep the children
            pair = self._children[key] = (self.requests.labels(role, method, str(status)),
                                          self.latency.labels(role, method))
        pair[0].inc()
        pair[1].observe(seconds)


class StorageApp:
    """The request handler for one node (all drives)."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.metrics = _Metrics(ctx)
        self._roles: dict[str, RoleHandler | None] = {}

    def _role_handler(self, role: str) -> RoleHandler | None:
        if role not in self._roles:
            try:
                mod = importlib.import_module(f"storage_node.{role}_server")
                self._roles[role] = mod.handle
            except ModuleNotFoundError as exc:
                if exc.name != f"storage_node.{role}_server":
                    raise
                self._roles[role] = None
        return self._roles[role]

    async def handle(self, req: Request) -> Response:
        start = time.perf_counter()
        trans_id = req.headers.get("x-trans-id") or new_trans_id()
        role = "-"
        if not req.chunked and not req.content_length:
            await req.read()  # consume the (empty) body so the connection stays keep-alive
        try:
            role, resp = await self._dispatch(req)
        except DriveUnavailable as exc:
            resp = Response.text(507, str(exc))
        except (BadPath, ObjectError, HTTPError) as exc:
            status = getattr(exc, "status", 400)
            resp = Response.text(status, getattr(exc, "message", None) or str(exc),
                                 getattr(exc, "headers", None))
        elapsed = time.perf_counter() - start
        resp.headers.set("x-trans-id", trans_id)
        if role != "admin":
            self.metrics.observe(role, req.method, resp.status, elapsed)
            log_event(self.ctx.logger, "request", trans_id=trans_id, method=req.method,
                      path=req.raw_path.decode("latin-1"), role=role, status=resp.status,
                      ms=round(elapsed * 1000, 3), client=req.client[0])
        return resp

    async def _dispatch(self, req: Request) -> tuple[str, Response]:
        if req.path == "/healthcheck":
            return "admin", Response(200, {"Content-Type": "text/plain"}, b"OK")
        if req.path == "/metrics":
            return "admin", Response(200, {"Content-Type": "text/plain; version=0.0.4"},
                                     generate_latest(self.metrics.registry))
        if not is_valid_utf8(req.path):
            raise BadPath("path is not valid UTF-8 or contains NUL")
        if req.method == "PARTITIONS":
            return "replicate", await replicate.partitions(self.ctx, req.path.strip("/"))
        bp = split_backend_path(req.path)
        backend_type = (req.headers.get("x-backend-type") or "").strip().lower()
        if req.method in REPLICATION_VERBS:
            if backend_type in ("container", "account"):
                return backend_type, await self._delegate(backend_type, req)
            if bp.depth != 2 and not (req.method == "REPLICATE" and bp.depth == 3):
                raise BadPath(f"{req.method} takes /<drive>/<partition>")
            return "replicate", await replicate.handle(req, self.ctx, bp)
        if bp.depth == 5:
            if backend_type == "container":
                return "container", await self._delegate("container", req)
            return "object", await object_server.handle(req, self.ctx, bp)
        if bp.depth == 4:
            role = "account" if backend_type == "account" else "container"
            return role, await self._delegate(role, req)
        if bp.depth == 3:
            return "account", await self._delegate("account", req)
        raise BadPath(f"{req.method} on /<drive>/<partition> is not supported")

    async def _delegate(self, role: str, req: Request) -> Response:
        handler = self._role_handler(role)
        if handler is None:
            return Response.text(501, f"the {role} server is not installed on this node")
        return await handler(req, self.ctx)


def _default_drive_layer(settings: StorageSettings) -> DriveLayer:
    """The real disk; with ``fault_injection`` the sentinel-file faults
    (FAULTS 3, 11; ``storage_node.drive`` docstring)."""
    if settings.fault_injection:
        from storage_node._fault_drive import FaultyDiskDrives

        return FaultyDiskDrives()
    return DiskDrives()


def build_context(config: ClusterConfig, drives: Mapping[str, Path], *, clock: Callable[[], float] = time.time,
                  drive_layer: DriveLayer | None = None, settings: StorageSettings | None = None,
                  http: HTTPClient | None = None) -> NodeContext:
    settings = settings or settings_from_config(config)
    return NodeContext(
        drives=dict(drives),
        pools=make_pools(drives, settings.threads_per_drive),
        clock=clock,
        hash_secret=config.hash_secret,
        http=http or HTTPClient(),
        logger=get_logger("storage"),
        settings=settings,
        drive_layer=drive_layer or _default_drive_layer(settings),
        ring_dir=config.ring_dir,
    )


def _clean(ctx: NodeContext, drive: str) -> int:
    return ctx.drive_layer.clean_temp(ctx.check_drive(drive))


async def serve_storage(
    config: ClusterConfig,
    *,
    drives: Mapping[str, Path],
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] = time.time,
    drive_layer: DriveLayer | None = None,
    settings: StorageSettings | None = None,
    listeners: list[Any] | None = None,
    http: HTTPClient | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every drive of this node on one port until cancelled; reports the
    bound port through ``task_status.started``. With
    ``settings.auditor_bytes_per_second > 0`` an auditor task runs too."""
    ctx = build_context(config, drives, clock=clock, drive_layer=drive_layer, settings=settings, http=http)
    app = StorageApp(ctx)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(partial(serve_http, app.handle, host=host, port=port, listeners=listeners,
                                            server_name="ringstack-storage",
                                            body_timeout=ctx.settings.client_timeout))
        cleaned = 0
        for d in ctx.drives:  # temp files of writers that died (crash before rename)
            with contextlib.suppress(DriveUnavailable, OSError):
                cleaned += await ctx.run(d, _clean, ctx, d)
        log_event(ctx.logger, "storage_started", host=host, port=bound, drives=sorted(drives),
                  temp_files_removed=cleaned)
        if ctx.settings.auditor_bytes_per_second > 0:
            from storage_node.auditor import run_auditor

            nursery.start_soon(run_auditor, ctx)
        # container counts -> accounts, retried from the durable dirty queue (container_server)
        from storage_node.container_server import mark_reporter_started, run_account_reporter

        mark_reporter_started(ctx)
        await nursery.start(run_account_reporter, ctx)
        task_status.started(bound)
