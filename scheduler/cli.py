"""CLI: ``ringstack serve placement`` (and, when present, the scheduler's
``ringstack placement ...``, ``schedule`` and ``evacuate`` from
``scheduler.sched_cli``).

``ringstack serve placement --data DIR [--port 8778] [--host 127.0.0.1]
[--policy legacy|secure-rbac|open] [--config FILE]
[--cors-allowed-origin ORIGIN ...] [--cors-allow-headers H1,H2]`` prints ``READY placement
HOST:PORT`` once listening (``--port 0`` picks a free port). Options not
given on the command line come from the ``[placement]`` section of the
cluster config (``data``, ``port``, ``host``, ``policy``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from functools import partial
from typing import Any

import trio

POLICIES = ("legacy", "secure-rbac", "open")


def register(sub: Any, serve_sub: Any) -> None:
    p = serve_sub.add_parser("placement", help="run the Placement-compatible API")
    p.add_argument("--data", help="state directory (LMDB), created if missing")
    p.add_argument("--port", type=int, default=None, help="listen port (default 8778; 0: any)")
    p.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    p.add_argument("--policy", choices=POLICIES, default=None,
                   help="policy defaults: legacy (admin does everything), secure-rbac, "
                   "or open (any authenticated user; tests)")
    p.add_argument("--config", default=None, help="cluster TOML config ([placement] section)")
    p.add_argument("--cors-allowed-origin", action="append", default=None, metavar="ORIGIN",
                   help="enable CORS for this origin (repeatable; '*' for any), "
                   "as Placement's [cors] allowed_origin")
    p.add_argument("--cors-allow-headers", default=None, metavar="H1,H2",
                   help="extra request headers a CORS preflight may ask for")
    p.add_argument("--no-fsync", action="store_true", help="do not fsync commits (tests)")
    p.add_argument("--log-level", default="INFO", help="one JSON line per request at INFO")
    p.set_defaults(func=_serve)
    try:
        sched_cli = importlib.import_module("scheduler.sched_cli")
        sched_cli.register(sub)
    except ModuleNotFoundError as exc:
        if exc.name != "scheduler.sched_cli":
            _warn(exc)
    except Exception as exc:  # noqa: BLE001 - a broken scheduler CLI must not stop serving
        _warn(exc)


def _warn(exc: BaseException) -> None:
    print(f"warning: scheduler commands unavailable: {exc!r}", file=sys.stderr)


def _cors(args: argparse.Namespace, section: Any) -> Any:
    """CORS from the flags or ``[placement] cors_allowed_origin`` / ``cors_allow_headers``
    (a list or a comma-separated string); None when no origin is configured."""
    from .server import CorsConfig

    def as_list(value: Any) -> list[str]:
        items = value.split(",") if isinstance(value, str) else list(value or [])
        return [str(v).strip() for v in items if str(v).strip()]

    origins = as_list(args.cors_allowed_origin or section.get("cors_allowed_origin"))
    if not origins:
        return None
    allow = as_list(args.cors_allow_headers or section.get("cors_allow_headers"))
    return CorsConfig(frozenset(origins), tuple(allow))


def _serve(args: argparse.Namespace) -> int:
    from cli.main import CommandError
    from common.config import ConfigError, load_config
    from common.log import setup_logging

    from .server import serve_placement

    try:
        section = load_config(args.config).section("placement")
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    data = args.data or section.get("data")
    if not data:
        raise CommandError("--data DIR is required (or [placement] data in the config)")
    port = args.port if args.port is not None else int(section.get("port", 8778))
    host = args.host or str(section.get("host", "127.0.0.1"))
    policy = args.policy or str(section.get("policy", "legacy"))
    if policy not in POLICIES:
        raise CommandError(f"unknown policy {policy!r}: use legacy, secure-rbac or open")

    cors = _cors(args, section)
    setup_logging(args.log_level)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(partial(
                serve_placement, data, host=host, port=port, policy=policy,
                durable=not args.no_fsync, cors=cors))
            print(f"READY placement {host}:{bound}", flush=True)

    try:
        trio.run(main)
    except OSError as exc:
        raise CommandError(f"cannot serve placement: {exc}") from None
    except KeyboardInterrupt:
        return 130
    return 0
