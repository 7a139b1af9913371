"""Commands of the container/account replicators, updater, expirer and the
cluster health tools (registered by ``replicator.cli``):

- ``ringstack serve container-replicator|account-replicator|updater|expirer
  --config FILE --drives NAME=PATH,... [--node HOST:PORT] [--once]
  [--interval S] [--port P]``: one daemon for one storage node (the node is
  found in the ring by its drive names unless ``--node`` says it).
  ``--once``: one pass, its counts as one JSON line on stdout, exit. Else
  ``READY <role> HOST:PORT`` and ``/healthcheck``, ``/stats``, ``/metrics``.
  Settings: ``[replicator]`` ``interval``, ``concurrency``, ``node_timeout``.
- ``ringstack dispersion --config FILE [--json] [--populate]``
- ``ringstack status --config FILE [--json]``
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import trio

DAEMONS = {
    "container-replicator": "replicate container databases with their other replicas",
    "account-replicator": "replicate account databases with their other replicas",
    "updater": "retry the queued container updates of object writes",
    "expirer": "delete objects past their X-Delete-At",
}


def _error(message: str) -> Exception:
    from cli.main import CommandError

    return CommandError(message)


def _ring(config: Any, name: str) -> Any:
    from ring.lookup import Ring
    from ring.ringfile import RingFileError

    try:
        return Ring(Path(config.ring_dir or ".") / f"{name}.ring", config.hash_secret)
    except RingFileError as exc:
        raise _error(str(exc)) from exc


def _setup(args: argparse.Namespace) -> tuple[Any, dict[str, Path], Any, tuple[str, int]]:
    from replicator.peers import local_node
    from storage_node.cli import _load

    config, drives, _ = _load(args)
    ring = _ring(config, "account" if args.role == "account-replicator" else "container")
    if args.node:
        host, sep, port = args.node.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise _error(f"--node wants HOST:PORT, got {args.node!r}")
        node = (host, int(port))
    else:
        try:
            node = local_node(ring.devices, drives)
        except ValueError as exc:
            raise _error(str(exc)) from exc
    return config, drives, ring, node


def cmd_serve(args: argparse.Namespace) -> int:
    from common.log import setup_logging
    from replicator._daemon import DaemonSettings, run_passes

    config, drives, ring, node = _setup(args)
    settings = DaemonSettings.from_section(config.section("replicator"), interval=args.interval,
                                           concurrency=args.concurrency)
    setup_logging(args.log_level)
    role = args.role

    async def main() -> None:
        if role in ("container-replicator", "account-replicator"):
            from replicator.db_replicator import DbReplicator

            rep = DbReplicator(role.split("-")[0], ring, drives, node, settings)
            run_pass = rep.run_pass
        else:
            from storage_node.cli import _settings
            from storage_node.server import build_context

            ctx = build_context(config, drives, settings=_settings(config, args))
            if role == "updater":
                from replicator.updater import updater_pass

                async def run_pass() -> dict[str, Any]:
                    return await updater_pass(ctx, settings.concurrency)
            else:
                from replicator.expirer import expirer_pass

                object_ring = _ring(config, "object")

                async def run_pass() -> dict[str, Any]:
                    return await expirer_pass(ctx, object_ring, ring, node, settings.concurrency,
                                              settings.node_timeout)
        await run_passes(role, run_pass, drives, node, settings.interval, args.once, args.host, args.port or 0)

    trio.run(main)
    return 0


def cmd_dispersion(args: argparse.Namespace) -> int:
    from replicator.dispersion import main as dispersion_main

    return dispersion_main(args)


def cmd_status(args: argparse.Namespace) -> int:
    from replicator.status import main as status_main

    return status_main(args)


def register(sub: Any, serve_sub: Any) -> None:
    for role, help_text in DAEMONS.items():
        p = serve_sub.add_parser(role, help=help_text)
        p.add_argument("--config", default=None, help="cluster TOML file")
        p.add_argument("--drives", default="", help="NAME=PATH[,NAME=PATH...] (default: [storage] drives)")
        p.add_argument("--node", default=None, help="HOST:PORT of this node's storage server (default: from the ring)")
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=0, help="port for /healthcheck, /stats, /metrics (0: any)")
        p.add_argument("--once", action="store_true", help="one pass, print its counts as JSON, exit")
        p.add_argument("--interval", type=float, default=None, help="seconds between pass starts")
        p.add_argument("--concurrency", type=int, default=None, help="requests at once")
        p.add_argument("--log-level", default="INFO")
        p.set_defaults(func=cmd_serve, role=role)
    d = sub.add_parser("dispersion", help="how many replicas of a sample of objects and containers are in place")
    d.add_argument("--config", required=True, help="cluster TOML file")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.add_argument("--populate", action="store_true", help="(re)write the sample first")
    d.add_argument("--coverage", type=float, default=None,
                   help="percent of partitions sampled (default: 100 up to 1024 partitions, else 1)")
    d.set_defaults(func=cmd_dispersion)
    s = sub.add_parser("status", help="per node and drive: up/down, usage, replication, async pendings, quarantine")
    s.add_argument("--config", required=True, help="cluster TOML file")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_status)
