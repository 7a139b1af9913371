"""``ringstack serve storage`` and ``ringstack serve auditor``.

Drives come from ``--drives NAME=PATH,...`` or the config's ``[storage]``
section (``drives = {d1 = "/srv/node/d1", ...}``; relative paths are taken
from the config file's directory); ``--port`` defaults to ``[storage] port``
or 0. ``--workers N`` runs N processes accepting on one port (as Swift's
``workers``; ``common.workers``). Every other ``[storage]`` key is a
``StorageSettings`` field (``mount_check``, ``group_commit``,
``reclaim_age``, ``auditor_bytes_per_second`` ...); flags override them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import trio

from common.config import ClusterConfig, ConfigError, load_config
from common.log import setup_logging
from common.workers import announce_ready, run_server


def _command_error(message: str) -> Exception:
    from cli.main import CommandError

    return CommandError(message)


def parse_drives(text: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, path = item.partition("=")
        if not sep or not name or not path or "/" in name:
            raise _command_error(f"--drives wants NAME=PATH[,NAME=PATH...], got {item!r}")
        out[name] = Path(path).resolve()
    return out


def _load(args: argparse.Namespace) -> tuple[ClusterConfig, dict[str, Path], int]:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise _command_error(str(exc)) from exc
    sec = config.section("storage")
    if args.drives:
        drives = parse_drives(args.drives)
    else:
        table = sec.get("drives", {})
        if isinstance(table, str):
            drives = parse_drives(table)
        elif isinstance(table, dict):
            base = Path(config.path).parent if config.path else Path.cwd()
            drives = {k: (base / str(v)).resolve() for k, v in table.items()}
        else:
            raise _command_error("[storage] drives must be a table NAME = PATH")
    if not drives:
        raise _command_error("no drives: pass --drives NAME=PATH,... or set [storage] drives")
    port = args.port if args.port is not None else int(sec.get("port", 0))
    return config, drives, port


def _settings(config: ClusterConfig, args: argparse.Namespace) -> Any:
    from storage_node.server import settings_from_config

    settings = settings_from_config(config)
    overrides: dict[str, Any] = {}
    if getattr(args, "no_group_commit", False):
        overrides["group_commit"] = False
    if getattr(args, "mount_check", False):
        overrides["mount_check"] = True
    bps = getattr(args, "auditor_bps", None)
    if bps is not None:
        overrides["auditor_bytes_per_second"] = bps
    interval = getattr(args, "interval", None)
    if interval is not None:
        overrides["auditor_interval"] = interval
    return dataclasses.replace(settings, **overrides)


def _clean_temp(config: ClusterConfig, drives: dict[str, Path], settings: Any) -> None:
    from storage_node.drive import DriveUnavailable
    from storage_node.server import build_context

    ctx = build_context(config, drives, settings=settings)
    for d in drives:
        try:
            ctx.drive_layer.clean_temp(ctx.check_drive(d))
        except (DriveUnavailable, OSError):
            continue  # that drive answers 507 until it comes back


def cmd_serve_storage(args: argparse.Namespace) -> int:
    config, drives, port = _load(args)
    settings = _settings(config, args)
    setup_logging(args.log_level)
    _clean_temp(config, drives, settings)  # before READY and before the workers fork

    async def serve(listener: trio.SocketListener, bound: int) -> None:
        from storage_node.server import serve_storage

        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_storage, config, drives=drives, host=args.host, port=bound,
                                        settings=settings, listeners=[listener]))

    return run_server("storage", args.host, port, args.workers, serve)


def cmd_serve_auditor(args: argparse.Namespace) -> int:
    """Audit the drives: ``--once`` prints the pass's counts as JSON and
    exits; otherwise audit forever and answer ``/healthcheck`` and ``/stats``
    on ``--port``."""
    config, drives, _ = _load(args)
    settings = _settings(config, args)
    setup_logging(args.log_level)
    from common.http import Request, Response, serve_http
    from storage_node.auditor import AuditStats, audit_pass, run_auditor
    from storage_node.server import build_context

    async def main() -> None:
        ctx = build_context(config, drives, settings=settings)
        stats = AuditStats()
        if args.once:
            await audit_pass(ctx, settings.auditor_bytes_per_second, stats)
            print(json.dumps(stats.as_dict()), flush=True)
            return

        async def handler(req: Request) -> Response:
            if req.path == "/healthcheck":
                return Response(200, {"Content-Type": "text/plain"}, b"OK")
            if req.path == "/stats":
                return Response(200, {"Content-Type": "application/json"}, json.dumps(stats.as_dict()).encode())
            return Response.text(404, "auditor: /healthcheck or /stats")

        async with trio.open_nursery() as nursery:
            bound = await nursery.start(partial(serve_http, handler, host=args.host, port=args.port or 0))
            announce_ready("auditor", args.host, bound)
            nursery.start_soon(run_auditor, ctx, stats)

    trio.run(main)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="cluster TOML file ([storage] section)")
    p.add_argument("--drives", default="", help="NAME=PATH[,NAME=PATH...] (default: [storage] drives)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="0 = any free port (default: [storage] port or 0)")
    # RINGSTACK_LOG_LEVEL lets a harness quiet every node it starts (the
    # per-request INFO line is written on the event loop).
    p.add_argument("--log-level", default=os.environ.get("RINGSTACK_LOG_LEVEL", "INFO"))
    p.add_argument("--mount-check", action="store_true", help="answer 507 for a drive that is not a mount point")


def register(sub: Any, serve_sub: Any) -> None:
    p = serve_sub.add_parser("storage", help="the storage node: objects, containers, accounts on one port")
    _common(p)
    p.add_argument("--workers", type=int, default=1, help="processes accepting on the port (SO_REUSEPORT-style)")
    p.add_argument("--no-group-commit", action="store_true", help="one LMDB transaction per write (benchmarks)")
    p.add_argument("--auditor-bps", type=float, default=None,
                   help="run the auditor inside the server at this many bytes/s (0: off)")
    p.set_defaults(func=cmd_serve_storage)
    a = serve_sub.add_parser("auditor", help="re-check every object's chunk checksums, quarantine corrupt ones")
    _common(a)
    a.add_argument("--auditor-bps", "--bytes-per-second", dest="auditor_bps", type=float, default=None,
                   help="pace reads to this many bytes/s (0: unpaced)")
    a.add_argument("--interval", type=float, default=None, help="seconds between passes")
    a.add_argument("--once", action="store_true", help="one pass, print counts as JSON, exit")
    a.set_defaults(func=cmd_serve_auditor)
