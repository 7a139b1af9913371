"""``ringstack``: one entry point, a subcommand per part.

Each part owns its subcommands in its own ``cli.py`` with a
``register(subparsers)`` function; this module only lists them, so parts never
edit each other's files. A part that cannot be imported (for instance while it
is being built) is left out of ``--help`` rather than breaking the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from common.memory import keep_freed_memory

# module -> what it provides (for the error message when it fails to import)
COMMAND_MODULES = (
    "ring.cli",            # ringstack ring ...
    "storage_node.cli",    # ringstack serve storage|auditor
    "proxy.cli",           # ringstack serve proxy
    "replicator.cli",      # ringstack serve replicator|updater|expirer, dispersion, status
    "scheduler.cli",       # ringstack serve placement, placement ..., schedule, evacuate
    "cli.dev",             # ringstack dev up
    "benchmarks.cli",      # ringstack bench ...
)


# Which module provides a command, so one invocation imports only its part
# (a server starts without importing numpy for the ring builder, say).
# Anything not listed here loads every module.
COMMAND_ROUTES = {
    "ring": "ring.cli",
    "dev": "cli.dev",
    "bench": "benchmarks.cli",
    "dispersion": "replicator.cli",
    "status": "replicator.cli",
    "placement": "scheduler.cli",
    "schedule": "scheduler.cli",
    "evacuate": "scheduler.cli",
}
SERVE_ROUTES = {
    "storage": "storage_node.cli",
    "auditor": "storage_node.cli",
    "proxy": "proxy.cli",
    "placement": "scheduler.cli",
    "replicator": "replicator.cli",
    "container-replicator": "replicator.cli",
    "account-replicator": "replicator.cli",
    "updater": "replicator.cli",
    "expirer": "replicator.cli",
}


def _modules_for(argv: Sequence[str] | None) -> tuple[str, ...]:
    if not argv:
        return COMMAND_MODULES
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return COMMAND_MODULES
    if words[0] == "serve" and len(words) > 1 and words[1] in SERVE_ROUTES:
        return (SERVE_ROUTES[words[1]],)
    if words[0] in COMMAND_ROUTES:
        return (COMMAND_ROUTES[words[0]],)
    return COMMAND_MODULES


class CommandError(Exception):
    """A user error: printed as one line, exit status 1 (or ``.code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ringstack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="run a server or daemon")
    serve_sub = serve.add_subparsers(dest="role", metavar="ROLE")
    serve_sub.required = True
    for name in _modules_for(argv):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
                continue  # that part does not exist yet
            raise
        module.register(sub, serve_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    keep_freed_memory()  # every ringstack process, servers first (common/memory.py)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        result = func(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: part CLIs raise
    # cli.main.CommandError, which is a different class from __main__'s.
    from cli.main import main as _main

    sys.exit(_main())
