"""``serve_placement``: the Placement API process shell.

Opens (or creates) the LMDB store under ``data_dir`` and serves
``PlacementApp`` with ``common.http.serve_http``. On an empty directory the
store is created in milliseconds, so a fresh server answers well within a
second. Reports readiness with ``task_status.started(port)``; cancelling
the call stops serving and closes the store. ``/healthcheck``, ``/metrics``
and per-request logging come from ``_api_ops.Operations``.
"""

from __future__ import annotations

from functools import partial

import trio

from common.http import serve_http

from ._api_cors import CorsConfig
from ._api_ops import Operations
from .placement_api import PlacementApp
from .store import PlacementStore

POLICIES = ("legacy", "secure-rbac", "open")


async def serve_placement(
    data_dir: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8778,
    policy: str = "legacy",
    durable: bool = True,
    cors: CorsConfig | None = None,
    log_requests: bool = True,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")
    store = PlacementStore(data_dir, durable=durable)
    app = PlacementApp(store, policy, cors)
    handler = Operations(app.handle, log_requests=log_requests)
    try:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(partial(serve_http, handler, host=host, port=port,
                                                server_name="ringstack-placement"))
            task_status.started(bound)
    finally:
        store.close()
