"""Operations wrapper around the Placement app: ``GET /healthcheck`` (200
``OK``, no auth), ``GET /metrics`` (Prometheus text format), and one
structured log line per request carrying Placement's request id (DESIGN:
every server exposes both and logs every request). Placement itself has
neither route, so clients never see a difference.

The counters are rendered by hand rather than with ``prometheus_client``:
importing it costs a noticeable part of the startup budget (a fresh server
must answer within a second).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from common.http import Request, Response
from common.log import get_logger, log_event

Handler = Callable[[Request], Awaitable[Response]]
_log = get_logger("placement")


class Operations:
    """Wrap ``app`` (a handler); ``log_requests`` False keeps benchmarks quiet."""

    def __init__(self, app: Handler, *, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests
        self.requests: dict[tuple[str, int], int] = {}
        self.seconds: dict[str, float] = {}

    def metrics_text(self) -> str:
        lines = ["# HELP placement_requests_total Placement API requests",
                 "# TYPE placement_requests_total counter"]
        for (method, status), n in sorted(self.requests.items()):
            lines.append(f'placement_requests_total{{method="{method}",status="{status}"}} {n}')
        lines += ["# HELP placement_request_seconds_total Time spent answering",
                  "# TYPE placement_request_seconds_total counter"]
        for method, secs in sorted(self.seconds.items()):
            lines.append(f'placement_request_seconds_total{{method="{method}"}} {secs:.6f}')
        return "\n".join(lines) + "\n"

    async def __call__(self, request: Request) -> Response:
        if request.path == "/healthcheck" and request.method in ("GET", "HEAD"):
            return Response(200, {"content-type": "text/plain"}, b"OK")
        if request.path == "/metrics" and request.method == "GET":
            return Response(200, {"content-type": "text/plain; version=0.0.4"},
                            self.metrics_text().encode())
        start = time.perf_counter()
        response = await self.app(request)
        elapsed = time.perf_counter() - start
        key = (request.method, response.status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.seconds[request.method] = self.seconds.get(request.method, 0.0) + elapsed
        if self.log_requests:
            log_event(_log, "request", request_id=response.headers.get("openstack-request-id"),
                      method=request.method, path=request.path, query=request.query_string,
                      status=response.status, duration=round(elapsed, 6),
                      client=request.client[0])
        return response
