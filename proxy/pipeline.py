"""The proxy's middleware pipeline, Swift-style.

``catch_errors -> gatekeeper -> proxy_logging -> healthcheck -> info -> tempauth -> copy ->
slo -> ProxyApp`` (the ``[proxy] pipeline`` key can drop some, e.g. for a
benchmark without auth). Each middleware is ``X(app, conf)`` with ``async
__call__(request) -> Response``. The feature middlewares (tempauth, copy,
slo, info) live in their own modules and are imported lazily: one that does
not import is skipped with a warning rather than taking the proxy down.

- ``catch_errors``: an exception below becomes a 500 with a plain-text body
  (``HTTPError`` keeps its status); the proxy stays up.
- ``proxy_logging``: gives every request a transaction id (``X-Trans-Id``,
  also returned as ``X-Openstack-Request-Id``) that the app passes to the
  storage nodes, logs one JSON line per request and counts it for
  ``/metrics``.
- ``gatekeeper``: strips system metadata (``X-*-Sysmeta-*``) and
  ``X-Backend-*`` headers from client requests and from responses, as
  Swift's gatekeeper does: only middlewares set or read them.
- ``healthcheck``: ``GET /healthcheck`` -> 200 ``OK``; ``GET /metrics`` ->
  Prometheus text.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from common import splice
from common.http import HTTPError, PumpStats, Request, Response
from common.log import get_logger, log_event, new_trans_id
from proxy.config import ProxyConfig

Handler = Callable[[Request], Awaitable[Response]]
_log = get_logger("proxy")

FEATURES = {
    "info": ("proxy.info", "Info"),
    "tempauth": ("proxy.tempauth", "TempAuth"),
    "copy": ("proxy.copy", "ServerSideCopy"),
    "slo": ("proxy.slo", "StaticLargeObject"),
}


class CatchErrors:
    def __init__(self, app: Handler, conf: ProxyConfig) -> None:
        self.app = app

    async def __call__(self, request: Request) -> Response:
        try:
            return await self.app(request)
        except HTTPError as exc:
            return Response.text(exc.status, exc.message)
        except Exception as exc:
            log_event(_log, "unhandled_error", trans_id=request.context.get("trans_id"),
                      method=request.method, path=request.path, error=repr(exc))
            _log.exception("unhandled error")
            return Response.text(500, "An error occurred while processing this request.")


SYSMETA_PREFIXES = (
    "x-account-sysmeta-", "x-container-sysmeta-", "x-object-sysmeta-", "x-object-transient-sysmeta-",
    "x-backend-",
)


class Gatekeeper:
    def __init__(self, app: Handler, conf: ProxyConfig) -> None:
        self.app = app

    async def __call__(self, request: Request) -> Response:
        for name in [n for n in request.headers if n.startswith(SYSMETA_PREFIXES)]:
            request.headers.pop(name)
        response = await self.app(request)
        for name in [n for n in response.headers if n.startswith(SYSMETA_PREFIXES)]:
            response.headers.pop(name)
        return response


class _TransferCollector(Collector):
    """Bodies moved without passing through the event loop."""

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("ringstack_proxy_pumped_bodies",
                                  "PUT bodies read and fanned out in a worker thread (Request.pump_body)",
                                  value=PumpStats.bodies)
        yield CounterMetricFamily("ringstack_proxy_spliced_bodies", "GET bodies relayed kernel-side (splice)",
                                  value=splice.Stats.relays)
        yield CounterMetricFamily("ringstack_proxy_spliced_bytes", "GET body bytes relayed kernel-side (splice)",
                                  value=splice.Stats.bytes)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_TransferCollector())
        self.requests = Counter("ringstack_proxy_requests", "Requests answered", ["method", "status"],
                                registry=self.registry)
        self.latency = Histogram("ringstack_proxy_request_seconds", "Time to the response head", ["method"],
                                 registry=self.registry)


class ProxyLogging:
    def __init__(self, app: Handler, conf: ProxyConfig, metrics: Metrics | None = None) -> None:
        self.app = app
        self.enabled = conf.log_requests
        self.metrics = metrics or Metrics()

    async def __call__(self, request: Request) -> Response:
        start = time.perf_counter()
        extra = request.headers.get("x-trans-id-extra")
        tid = new_trans_id(f"-{extra[:32]}" if extra else "")
        request.context["trans_id"] = tid
        request.headers.set("x-trans-id", tid)
        response = await self.app(request)
        response.headers.set("x-trans-id", tid)
        response.headers.set("x-openstack-request-id", tid)
        if (request.headers.get("connection") or "").lower() == "keep-alive" and "connection" not in response.headers:
            response.headers.set("connection", "keep-alive")  # echoed, as Swift's eventlet server does
        elapsed = time.perf_counter() - start
        self.metrics.requests.labels(request.method, str(response.status)).inc()
        self.metrics.latency.labels(request.method).observe(elapsed)
        if self.enabled:
            log_event(_log, "request", trans_id=tid, method=request.method, path=request.path,
                      status=response.status, client=request.client[0], duration=round(elapsed, 6),
                      length=request.content_length)
        return response


class Healthcheck:
    def __init__(self, app: Handler, conf: ProxyConfig, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, request: Request) -> Response:
        if request.path == "/healthcheck":
            return Response(200, {"content-type": "text/plain"}, b"OK")
        if request.path == "/metrics" and self.metrics is not None:
            return Response(200, {"content-type": "text/plain; version=0.0.4"}, generate_latest(self.metrics.registry))
        return await self.app(request)


def _feature(name: str) -> Callable[[Handler, ProxyConfig], Handler] | None:
    module_name, attr = FEATURES[name]
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        log_event(_log, "middleware_missing", middleware=name, error=repr(exc))
        return None


def build_pipeline(app: Handler, conf: ProxyConfig) -> Handler:
    """Wrap ``app`` in the configured middlewares (outermost first in the config)."""
    names = conf.pipeline.split()
    unknown = [n for n in names if n not in FEATURES and n not in ("catch_errors", "gatekeeper", "proxy_logging", "healthcheck")]
    if unknown:
        raise ValueError(f"[proxy] pipeline: unknown middleware(s) {', '.join(unknown)}")
    metrics = Metrics()
    handler: Any = app
    for name in reversed(names):
        if name == "catch_errors":
            handler = CatchErrors(handler, conf)
        elif name == "gatekeeper":
            handler = Gatekeeper(handler, conf)
        elif name == "proxy_logging":
            handler = ProxyLogging(handler, conf, metrics)
        elif name == "healthcheck":
            handler = Healthcheck(handler, conf, metrics)
        else:
            factory = _feature(name)
            if factory is not None:
                handler = factory(handler, conf)
    return handler  # type: ignore[no-any-return]
