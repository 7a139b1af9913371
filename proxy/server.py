"""``serve_proxy``: the proxy server shell (rings + app + pipeline + HTTP).

Injected world: rings, clocks and the HTTP client (its ``connect`` is the
transport) are parameters with real defaults, so the simulation can run the
proxy in memory. Started with ``nursery.start``; reports the bound port via
``task_status.started(port)``; serves until cancelled. Read repair tasks run
in the server's nursery, so cancelling the server cancels them too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import trio

from common.http import HTTPClient, serve_http
from proxy.app import ProxyApp, Rings
from proxy.config import ProxyConfig
from proxy.pipeline import build_pipeline
from ring.lookup import Ring
from ring.ringfile import RingFileError

RING_NAMES = ("account", "container", "object")


def ring_paths(ring_dir: str) -> dict[str, str]:
    return {name: os.path.join(ring_dir or ".", f"{name}.ring") for name in RING_NAMES}


def load_rings(conf: ProxyConfig, *, monotonic: Callable[[], float] = time.monotonic) -> Rings:
    """The three rings from ``ring_dir``; ``RingFileError`` says which is missing."""
    paths = ring_paths(conf.ring_dir)
    for name, path in paths.items():
        if not os.path.exists(path):
            raise RingFileError(f"no {name} ring at {path} (build it with `ringstack ring ...`)")
    return Rings(*(Ring(paths[n], conf.hash_secret, clock=monotonic) for n in RING_NAMES))


def build_app(
    conf: ProxyConfig,
    *,
    rings: Rings | None = None,
    client: HTTPClient | None = None,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[ProxyApp, Any]:
    app = ProxyApp(conf, rings or load_rings(conf, monotonic=monotonic), client=client, clock=clock,
                   monotonic=monotonic)
    return app, build_pipeline(app, conf)


async def serve_proxy(
    conf: ProxyConfig,
    *,
    rings: Rings | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    client: HTTPClient | None = None,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    app, handler = build_app(conf, rings=rings, client=client, clock=clock, monotonic=monotonic)
    try:
        async with trio.open_nursery() as nursery:
            app.bind_nursery(nursery)
            bound = await nursery.start(
                partial(
                    serve_http,
                    handler,
                    host=host,
                    port=port,
                    listeners=listeners,
                    server_name="ringstack-proxy",
                    body_timeout=conf.client_timeout,
                )
            )
            task_status.started(bound)
    finally:
        with trio.CancelScope(shield=True):
            await app.aclose()
