"""``ringstack serve replicator`` (objects), and the other replicator-side
commands registered by ``replicator.db_cli`` when it exists (container and
account replicators, updater, expirer, dispersion, status).

``serve replicator --config FILE --drives NAME=PATH,... [--node HOST:PORT]``:
the node is found in the object ring by its drive names unless ``--node``
says it. ``--once``: one pass, its counts as one JSON line on stdout, exit.
Otherwise it replicates forever and answers ``/healthcheck``, ``/stats``
(the last pass, JSON) and ``/metrics`` (Prometheus) on ``--port`` after the
``READY replicator HOST:PORT`` line. Settings come from ``[replicator]``
(``concurrency``, ``bytes_per_second``, ``interval``, ``rehash_interval``,
``node_timeout``); flags override them.
"""

from __future__ import annotations

import argparse
import importlib
import json
from functools import partial
from pathlib import Path
from typing import Any

import trio


def _error(message: str) -> Exception:
    from cli.main import CommandError

    return CommandError(message)


def _node(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise _error(f"--node wants HOST:PORT, got {text!r}")
    return host, int(port)


def load_setup(args: argparse.Namespace) -> tuple[Any, dict[str, Path], tuple[str, int], Any]:
    """(ring, drives, node, settings) from the command line and config."""
    from common.config import ConfigError
    from replicator.object_replicator import ReplicatorSettings
    from replicator.peers import local_node
    from ring.lookup import Ring
    from ring.ringfile import RingFileError
    from storage_node.cli import _load

    try:
        config, drives, _ = _load(args)
    except ConfigError as exc:
        raise _error(str(exc)) from exc
    ring_dir = Path(config.ring_dir or ".")
    try:
        ring = Ring(ring_dir / "object.ring", config.hash_secret)
    except RingFileError as exc:
        raise _error(str(exc)) from exc
    try:
        node = _node(args.node) if args.node else local_node(ring.devices, drives)
    except ValueError as exc:
        raise _error(str(exc)) from exc
    settings = ReplicatorSettings.from_section(
        config.section("replicator"), interval=args.interval, concurrency=args.concurrency,
        bytes_per_second=args.bytes_per_second, rehash_interval=args.rehash_interval)
    return ring, drives, node, settings


def cmd_serve_replicator(args: argparse.Namespace) -> int:
    from common.log import setup_logging
    from replicator.object_replicator import ObjectReplicator

    ring, drives, node, settings = load_setup(args)
    setup_logging(args.log_level)
    rep = ObjectReplicator(ring, drives, node, settings)

    async def once() -> None:
        passes = await rep.run_until_quiet(args.until_quiet) if args.until_quiet else [await rep.run_pass()]
        for st in passes:
            print(json.dumps(st.as_dict(), sort_keys=True), flush=True)

    if args.once or args.until_quiet:
        trio.run(once)
        return 0
    trio.run(partial(_serve, rep, args.host, args.port or 0))
    return 0


async def _serve(rep: Any, host: str, port: int) -> None:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    from common.http import Request, Response, serve_http
    from common.workers import announce_ready

    last: dict[str, Any] = {}
    registry = CollectorRegistry()
    gauges = {k: Gauge(f"ringstack_replicator_{k}", f"object replicator: {k} in the last pass", registry=registry)
              for k in ("partitions", "suffixes_synced", "bytes_sent", "partitions_dropped", "peer_errors",
                        "duration")}
    Gauge("ringstack_replicator_passes", "passes done", registry=registry).set_function(lambda: rep.passes)

    async def handler(req: Request) -> Response:
        if req.path == "/healthcheck":
            return Response(200, {"Content-Type": "text/plain"}, b"OK")
        if req.path == "/stats":
            return Response(200, {"Content-Type": "application/json"}, json.dumps(last).encode())
        if req.path == "/metrics":
            return Response(200, {"Content-Type": "text/plain; version=0.0.4"}, generate_latest(registry))
        return Response.text(404, "replicator: /healthcheck, /stats or /metrics")

    async def loop() -> None:
        while True:
            start = trio.current_time()
            st = await rep.run_pass()
            last.clear()
            last.update(st.as_dict(), duration=trio.current_time() - start, passes=rep.passes)
            for k, g in gauges.items():
                g.set(float(last.get(k, 0)))
            await trio.sleep_until(start + rep.settings.interval)

    async with trio.open_nursery() as nursery:
        bound = await nursery.start(partial(serve_http, handler, host=host, port=port))
        announce_ready("replicator", host, bound)
        nursery.start_soon(loop)


def register(sub: Any, serve_sub: Any) -> None:
    p = serve_sub.add_parser("replicator", help="the object replicator of one storage node")
    p.add_argument("--config", default=None, help="cluster TOML file ([replicator], [storage] sections)")
    p.add_argument("--drives", default="", help="NAME=PATH[,NAME=PATH...] (default: [storage] drives)")
    p.add_argument("--node", default=None, help="HOST:PORT of this node's storage server (default: from the ring)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="port for /healthcheck, /stats, /metrics (0: any)")
    p.add_argument("--once", action="store_true", help="one pass, print its counts as JSON, exit")
    p.add_argument("--until-quiet", type=int, default=0, metavar="N",
                   help="passes until one changes nothing (at most N), print each, exit")
    p.add_argument("--interval", type=float, default=None, help="seconds between pass starts")
    p.add_argument("--concurrency", type=int, default=None, help="partitions at once per drive")
    p.add_argument("--bytes-per-second", type=float, default=None, help="limit on bytes sent (0: none)")
    p.add_argument("--rehash-interval", type=int, default=None,
                   help="every N-th pass rehashes every suffix from disk (0: never)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_serve_replicator)
    try:
        db_cli = importlib.import_module("replicator.db_cli")
    except ModuleNotFoundError as exc:
        if exc.name != "replicator.db_cli":
            raise
        return
    db_cli.register(sub, serve_sub)
