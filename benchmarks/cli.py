"""``ringstack bench NAME`` and ``ringstack bench all``.

A bench is a module ``benchmarks/bench_<name>.py`` with:

- ``run(args) -> dict``: run, print JSON (``benchmarks._common.emit``), return it;
- optional ``add_arguments(parser)``: its own options (all must have defaults);
- optional ``HELP``: one line for ``--help``;
- optional ``unavailable() -> str | None``: why it cannot run on this
  machine (a missing tool), or None; ``bench all`` skips it with that reason.

This file discovers them, so adding a bench never means editing it. Every
bench also gets ``--out DIR`` (JSON + PNG go there; default benchmarks/out).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from types import ModuleType
from typing import Any

import benchmarks
from benchmarks._common import DEFAULT_OUT

_BROKEN: dict[str, str] = {}


def discover() -> dict[str, ModuleType]:
    """name -> module for every importable ``benchmarks/bench_*.py``.

    A bench that fails to import is left out (and remembered in ``_BROKEN``
    so ``ringstack bench NAME`` can say why) rather than breaking the CLI.
    """
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda i: i.name):
        if not info.name.startswith("bench_"):
            continue
        name = info.name.removeprefix("bench_")
        try:
            module = importlib.import_module(f"benchmarks.{info.name}")
        except Exception as exc:  # a half-written bench must not break `ringstack`
            _BROKEN[name] = f"{type(exc).__name__}: {exc}"
            continue
        if callable(getattr(module, "run", None)):
            found[name] = module
    return found


def _broken(name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        from cli.main import CommandError

        raise CommandError(f"bench {name} cannot be loaded ({' '.join(_BROKEN[name].split())})")

    return run


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, help="directory for JSON and PNG results (default: %(default)s)")


def _run_one(module: ModuleType, args: argparse.Namespace) -> Any:
    return module.run(args)


def _run_all(args: argparse.Namespace) -> int:
    """Run every bench with its defaults (plus --out)."""
    for name, module in discover().items():
        why = module.unavailable() if hasattr(module, "unavailable") else None
        if why:
            print(f"# bench {name} skipped: {why}", flush=True)
            continue
        parser = argparse.ArgumentParser(prog=f"ringstack bench {name}")
        _common_options(parser)
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)
        sub_args = parser.parse_args(["--out", args.out])
        print(f"# bench {name}", flush=True)
        module.run(sub_args)
    return 0


def register(sub: Any, serve_sub: Any) -> None:
    bench = sub.add_parser("bench", help="run benchmarks (JSON on stdout, PNG plots in --out)")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCH")
    bench_sub.required = True
    for name, module in discover().items():
        p = bench_sub.add_parser(name, help=getattr(module, "HELP", f"the {name} benchmark"))
        _common_options(p)
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
        p.set_defaults(func=lambda args, module=module: _run_one(module, args) and 0)
    for name in _BROKEN:
        p = bench_sub.add_parser(name, help="(cannot be loaded)")
        p.set_defaults(func=_broken(name))
    p = bench_sub.add_parser("all", help="run every benchmark with its defaults")
    _common_options(p)
    p.set_defaults(func=_run_all)
