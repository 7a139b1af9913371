"""What every replicator-side daemon shares: its node and ring from the
command line, the per-drive stats file ``ringstack status`` reads, and the
serve loop (``/healthcheck``, ``/stats``, ``/metrics`` on ``--port`` after the
``READY <role> HOST:PORT`` line; ``--once``: one pass, its counts as one JSON
line on stdout).

Stats files: each pass writes ``<drive>/<daemon>.json`` (atomically) on every
local drive, as the object replicator writes ``<drive>/replication.json``:
``{"node", "daemon", "pass", "started", "duration", ...counts}``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

STATS_FILES = {  # daemon -> file name on each drive (object replicator's own name kept)
    "object-replicator": "replication.json",
    "container-replicator": "container-replicator.json",
    "account-replicator": "account-replicator.json",
    "updater": "updater.json",
    "expirer": "expirer.json",
}


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """The ``[replicator]`` keys these daemons use (flags override them)."""

    interval: float = 30.0
    concurrency: int = 8
    node_timeout: float = 10.0
    batch_rows: int = 5000

    @classmethod
    def from_section(cls, sec: Mapping[str, Any], **overrides: Any) -> DaemonSettings:
        kw = {k: type(getattr(cls(), k))(v) for k, v in sec.items() if k in cls.__dataclass_fields__}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw)


def write_stats(drives: Mapping[str, Path], daemon: str, record: Mapping[str, Any]) -> None:
    """(thread) ``record`` to ``<drive>/<daemon file>`` on every drive that exists."""
    name = STATS_FILES[daemon]
    body = json.dumps({"daemon": daemon, **record}, sort_keys=True, default=str)
    for path in drives.values():
        try:
            tmp = path / f".{name}.tmp"
            tmp.write_text(body)
            os.replace(tmp, path / name)
        except OSError:
            continue  # a missing drive has nothing to report


def read_stats(drive: Path) -> dict[str, dict[str, Any]]:
    """Every daemon's last pass recorded on ``drive`` (missing/garbled: left out)."""
    out = {}
    for daemon, name in STATS_FILES.items():
        try:
            out[daemon] = json.loads((drive / name).read_text())
        except (OSError, ValueError):
            continue
    return out


PassFn = Callable[[], Awaitable[dict[str, Any]]]


async def run_passes(role: str, run_pass: PassFn, drives: Mapping[str, Path], node: tuple[str, int],
                     interval: float, once: bool, host: str = "127.0.0.1", port: int = 0) -> None:
    """``once``: one pass, print its counts, return. Else serve and loop forever."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    from common.http import Request, Response, serve_http
    from common.log import get_logger, log_event
    from common.workers import announce_ready

    logger = get_logger(role)
    passes = 0
    last: dict[str, Any] = {}

    async def one() -> dict[str, Any]:
        nonlocal passes
        started, t0 = time.time(), trio.current_time()
        counts = await run_pass()
        passes += 1
        record = {"node": f"{node[0]}:{node[1]}", "pass": passes, "started": started,
                  "duration": round(trio.current_time() - t0, 6), **counts}
        log_event(logger, f"{role.replace('-', '_')}_pass", **record)
        await trio.to_thread.run_sync(write_stats, drives, role, record)
        return record

    if once:
        print(json.dumps(await one(), sort_keys=True, default=str), flush=True)
        return
    registry = CollectorRegistry()
    metric = role.replace("-", "_")
    gauges: dict[str, Gauge] = {}
    Gauge(f"ringstack_{metric}_passes", "passes done", registry=registry).set_function(lambda: passes)

    async def handler(req: Request) -> Response:
        if req.path == "/healthcheck":
            return Response(200, {"Content-Type": "text/plain"}, b"OK")
        if req.path == "/stats":
            return Response(200, {"Content-Type": "application/json"}, json.dumps(last, default=str).encode())
        if req.path == "/metrics":
            return Response(200, {"Content-Type": "text/plain; version=0.0.4"}, generate_latest(registry))
        return Response.text(404, f"{role}: /healthcheck, /stats or /metrics")

    async def loop() -> None:
        while True:
            start = trio.current_time()
            try:
                record = await one()
            except Exception as exc:  # a bad pass must not end the daemon
                log_event(logger, f"{metric}_error", error=repr(exc))
            else:
                last.clear()
                last.update(record)
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k not in ("pass", "started"):
                        if k not in gauges:
                            gauges[k] = Gauge(f"ringstack_{metric}_{k}", f"{role}: {k} in the last pass",
                                              registry=registry)
                        gauges[k].set(float(v))
            await trio.sleep_until(start + interval)

    async with trio.open_nursery() as nursery:
        bound = await nursery.start(partial(serve_http, handler, host=host, port=port))
        announce_ready(role, host, bound)
        nursery.start_soon(loop)
