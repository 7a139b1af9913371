"""``ringstack serve proxy --config FILE [--host] [--port] [--workers N]``.

Prints ``READY proxy <host>:<port>`` once listening. With ``--workers N``
(or ``[proxy] workers``) N processes accept on one port, as Swift's
``workers`` setting.
"""

from __future__ import annotations

import argparse
from typing import Any

from common.config import ConfigError, load_config
from common.log import setup_logging
from common.workers import run_server


def register(sub: Any, serve_sub: Any) -> None:
    p = serve_sub.add_parser("proxy", help="the Swift API proxy")
    p.add_argument("--config", help="cluster TOML file (default: built-in dev defaults)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="0 picks a free port (default 8080)")
    p.add_argument("--workers", type=int, default=None, help="processes on the port (default [proxy] workers)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from cli.main import CommandError
    from proxy.config import proxy_config
    from proxy.server import load_rings, serve_proxy
    from ring.ringfile import RingFileError

    try:
        conf = proxy_config(load_config(args.config), workers=args.workers)
        load_rings(conf)  # fail early, in the parent, with a clear message
    except (ConfigError, RingFileError) as exc:
        raise CommandError(str(exc)) from exc
    setup_logging(args.log_level)

    async def serve(listener: Any, port: int) -> None:
        await serve_proxy(conf, host=args.host, port=port, listeners=[listener])

    return run_server("proxy", args.host, args.port, conf.workers, serve)
