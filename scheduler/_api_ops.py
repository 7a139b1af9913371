"""Operations wrapper around the Placement app: ``GET /healthcheck`` (200
``OK``, no auth), ``GET /metrics`` (Prometheus text), and one structured log
line per request carrying Placement's request id (DESIGN: every server
exposes both and logs every request). Placement itself has neither route,
so clients never see a difference.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from common.http import Request, Response
from common.log import get_logger, log_event

Handler = Callable[[Request], Awaitable[Response]]
_log = get_logger("placement")


class Operations:
    """Wrap ``app`` (a handler); ``log_requests`` False keeps benchmarks quiet."""

    def __init__(self, app: Handler, *, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests
        self.registry = CollectorRegistry()
        self.requests = Counter("placement_requests_total", "Placement API requests",
                                ["method", "status"], registry=self.registry)
        self.latency = Histogram("placement_request_seconds", "Placement API latency",
                                 ["method"], registry=self.registry)

    async def __call__(self, request: Request) -> Response:
        if request.path == "/healthcheck" and request.method in ("GET", "HEAD"):
            return Response(200, {"content-type": "text/plain"}, b"OK")
        if request.path == "/metrics" and request.method == "GET":
            return Response(200, {"content-type": "text/plain; version=0.0.4"},
                            generate_latest(self.registry))
        start = time.perf_counter()
        response = await self.app(request)
        elapsed = time.perf_counter() - start
        self.requests.labels(request.method, str(response.status)).inc()
        self.latency.labels(request.method).observe(elapsed)
        if self.log_requests:
            log_event(_log, "request", request_id=response.headers.get("openstack-request-id"),
                      method=request.method, path=request.path, query=request.query_string,
                      status=response.status, duration=round(elapsed, 6),
                      client=request.client[0])
        return response
