"""``ringstack ring BUILDER COMMAND``: the operator's view of the builder file.

Commands follow swift-ring-builder: ``create``, ``add`` (Swift's device
syntax, several devices per call, or ``--file`` CSV/JSON), ``remove``,
``set-weight``, ``rebalance``, ``show``, ``dispersion``, ``validate``,
``write-ring``, ``lookup``. One builder file holds the inventory and the
object, container and account rings; commands act on all of them unless
``--ring NAME`` picks one.

Contract: a mutating command loads the file, applies every change in memory
and saves (atomically) only when all of them succeeded; any bad input raises
``CommandError`` with one line and leaves the builder file byte-for-byte
unchanged. This is a shell: it reads the clock (``now`` for rebalance) and
files; the cores it drives (inventory, builder, ring file) do not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cli.main import CommandError
from ring._builder_plan import RingValidationError
from ring._cli_devices import (
    DeviceSpec,
    DeviceSyntaxError,
    parse_device_args,
    parse_drive_file,
    parse_search,
)
from ring.builder import RingBuilder
from ring.builderfile import RING_NAMES, BuilderFileError, ClusterBuilder
from ring.hashing import BadName
from ring.inventory import Host, InventoryError
from ring.lookup import Ring
from ring.ringfile import MAGIC as RING_MAGIC
from ring.ringfile import MAX_PART_POWER, RingFileError, write_ring

_ERRORS = (BuilderFileError, RingFileError, InventoryError, RingValidationError, DeviceSyntaxError, BadName)
_PROGRESS_AFTER = 1.0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _int(text: str, what: str, lo: int, hi: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"{what} must be an integer, not {text!r}") from None
    if value < lo or (hi is not None and value > hi):
        raise CommandError(f"{what} {value} out of range {lo}..{'' if hi is None else hi}".rstrip("."))
    return value


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CommandError(f"{what} must be a number, not {text!r}") from None
    if not (value >= 0 and value != float("inf")):
        raise CommandError(f"{what} must be a finite number >= 0, not {text!r}")
    return value


def _load(path: str) -> ClusterBuilder:
    if not os.path.exists(path):
        raise CommandError(f"builder file {path} does not exist (create it with: ringstack ring {path} create ...)")
    return ClusterBuilder.load(path)


def _names(cb: ClusterBuilder, ring: str | None) -> list[str]:
    if ring is None:
        return list(cb.rings)
    cb.ring(ring)  # raises for an unknown name
    return [ring]


def _focus(cb: ClusterBuilder, ring: str | None) -> str:
    if ring is not None:
        cb.ring(ring)
        return ring
    return "object" if "object" in cb.rings else next(iter(cb.rings))


def _console() -> Any:
    """A terminal gets rich's own width; a pipe or file gets whole lines."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True))


# -- create / add / remove / set-weight -----------------------------------


def cmd_create(args: argparse.Namespace) -> int:
    pp = _int(args.part_power, "part power", 0, MAX_PART_POWER)
    replicas = _int(args.replicas, "replicas", 1)
    mph = _float(args.min_part_hours, "min_part_hours")
    overload = _float(args.overload, "overload")
    powers = {
        "object": args.object_part_power, "container": args.container_part_power,
        "account": args.account_part_power,
    }
    names = [args.ring] if args.ring else list(RING_NAMES)
    exists = os.path.exists(args.builder)
    cb = _load(args.builder) if exists else ClusterBuilder()
    if exists and (not args.ring or args.ring in cb.rings):
        what = f"ring {args.ring!r} in " if args.ring else ""
        raise CommandError(f"{what}builder file {args.builder} already exists")
    for name in names:
        p = _int(powers[name], f"{name} part power", 0, MAX_PART_POWER) if powers.get(name) is not None else pp
        cb.add_ring(name, RingBuilder(p, replicas, mph, overload, args.seed))
    cb.inventory.record("create", {"rings": names, "part_power": pp, "replicas": replicas,
                                   "min_part_hours": mph, "overload": overload})
    cb.save(args.builder)
    print(f"created {args.builder}: rings {', '.join(names)} (part power {pp}, replicas {replicas}, "
          f"min_part_hours {mph:g})")
    return 0


def _ensure_host(cb: ClusterBuilder, spec: DeviceSpec) -> None:
    inv = cb.inventory
    host = inv.hosts.get(spec.host)
    if host is None:
        inv.add_host(Host(spec.host, spec.region, spec.zone, spec.address, spec.port))
        return
    if (host.region, host.zone, host.address, host.port) != (spec.region, spec.zone, spec.address, spec.port):
        raise CommandError(
            f"host {spec.host} is r{host.region}z{host.zone}-{host.address}:{host.port}, "
            f"not r{spec.region}z{spec.zone}-{spec.address}:{spec.port}"
        )


def cmd_add(args: argparse.Namespace) -> int:
    specs: list[DeviceSpec] = []
    if args.devices:
        specs += parse_device_args(args.devices, args.host)
    if args.file:
        try:
            text = Path(args.file).read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror}") from None
        specs += parse_drive_file(args.file, text)
    if not specs:
        raise CommandError("add needs DEVICE WEIGHT pairs (e.g. r1z2-10.0.0.3:6200/sdb 100) or --file")
    cb = _load(args.builder)
    added = []
    for spec in specs:
        _ensure_host(cb, spec)
        added.append(cb.inventory.add_drive(spec.host, spec.device, spec.weight, spec.meta))
    cb.save(args.builder)
    for d in added[:20]:
        print(f"added drive d{d.id}: {d.host}/{d.device} weight {d.weight:g}")
    if len(added) > 20:
        print(f"... {len(added)} drives added in all")
    return 0


def _match(cb: ClusterBuilder, text: str, yes: bool) -> list[int]:
    inv = cb.inventory
    search = parse_search(text, frozenset(inv.hosts))
    ids = [d.id for d in inv.drives.values() if search.matches(d.id, inv.hosts[d.host], d.device)]
    if not ids:
        raise CommandError(f"no drive matches {text!r}")
    if len(ids) > 1 and not yes:
        raise CommandError(f"{text!r} matches {len(ids)} drives; add --yes to act on all of them")
    return sorted(ids)


def cmd_remove(args: argparse.Namespace) -> int:
    cb = _load(args.builder)
    done = []
    for text in args.searches:
        for drive_id in _match(cb, text, args.yes):
            done.append(cb.inventory.remove_drive(drive_id))
    cb.save(args.builder)
    for d in done:
        print(f"removed drive d{d.id}: {d.host}/{d.device} (its replicas move at the next rebalance)")
    return 0


def cmd_set_weight(args: argparse.Namespace) -> int:
    pairs = args.pairs
    if len(pairs) % 2:
        raise CommandError(f"set-weight needs SEARCH WEIGHT pairs; {pairs[-1]!r} has no weight")
    cb = _load(args.builder)
    done = []
    for i in range(0, len(pairs), 2):
        weight = _float(pairs[i + 1], "weight")
        for drive_id in _match(cb, pairs[i], args.yes):
            old = cb.inventory.drive(drive_id).weight
            done.append((cb.inventory.set_weight(drive_id, weight), old))
    cb.save(args.builder)
    for d, old in done:
        print(f"drive d{d.id} {d.host}/{d.device}: weight {old:g} -> {d.weight:g}")
    return 0


# -- rebalance ----------------------------------------------------------------


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int, float], None]]:
    """A callback (ring index, fraction) that shows a rich bar once a second has passed."""
    start = time.monotonic()
    state: dict[str, Any] = {}

    def tick(index: int, fraction: float) -> None:
        if "bar" not in state:
            if time.monotonic() - start < _PROGRESS_AFTER:
                return
            from rich.console import Console
            from rich.progress import Progress

            bar = Progress(console=Console(stderr=True), transient=True)
            bar.start()
            state["bar"], state["task"] = bar, bar.add_task("rebalancing", total=total)
        state["bar"].update(state["task"], completed=index + min(max(fraction, 0.0), 1.0))

    try:
        yield tick
    finally:
        if "bar" in state:
            state["bar"].stop()


def cmd_rebalance(args: argparse.Namespace) -> int:
    from ring import _cli_render as render

    cb = _load(args.builder)
    names = _names(cb, args.ring)
    if not cb.inventory.drives:
        raise CommandError("no drives in the inventory; add some first")
    now = time.time()
    reports = {}
    with _progress(len(names)) as tick:
        for i, name in enumerate(names):
            report = cb.rebalance(name, now, lambda f, i=i: tick(i, f))
            reports[name] = render.rebalance_summary(cb.ring(name), cb.inventory, report)
    cb.save(args.builder)
    focus = _focus(cb, args.ring)
    if args.json:
        _print_json({**reports[focus], "ring": focus, "rings": reports})
        return 0
    for name, r in reports.items():
        print(f"{name}: moved {r['moved']} partition-replicas ({r['moved_percent']:.2f}%), "
              f"balance {r['balance']:.2f}%, dispersion {r['dispersion']:.2f}%, {r['seconds']:.2f} s")
    return 0


# -- show / dispersion / validate -------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    from ring import _cli_render as render

    cb = _load(args.builder)
    focus = _focus(cb, args.ring)
    names = _names(cb, args.ring)
    summaries = {n: render.ring_summary(cb.ring(n), cb.inventory) for n in names}
    rows = render.device_rows({n: cb.ring(n) for n in names}, cb.inventory, focus)
    if args.json:
        hosts = len(cb.inventory.hosts)
        _print_json({**summaries[focus], "ring": focus, "rings": summaries, "hosts": hosts, "drives": rows})
        return 0
    render.print_show(_console(), args.builder, summaries, rows, focus)
    return 0


def cmd_dispersion(args: argparse.Namespace) -> int:
    from ring import _cli_render as render

    cb = _load(args.builder)
    names = _names(cb, args.ring)
    out = {}
    for n in names:
        b = cb.ring(n)
        if not b.ever_rebalanced():
            raise CommandError(f"ring {n!r} was never rebalanced")
        out[n] = {**render.ring_summary(b, cb.inventory), "tiers": render.dispersion_rows(b, cb.inventory)}
    focus = _focus(cb, args.ring)
    if args.json:
        _print_json({**out[focus], "ring": focus, "rings": out})
        return 0
    console = _console()
    for n, figures in out.items():
        render.print_dispersion(console, n, figures, figures["tiers"])
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    cb = _load(args.builder)
    names = _names(cb, args.ring)
    for n in names:
        b = cb.ring(n)
        if not b.ever_rebalanced():
            raise CommandError(f"ring {n!r} was never rebalanced")
        b.validate(cb.inventory)
    print(f"ok: {', '.join(names)} valid ({len(cb.inventory.drives)} drives)")
    return 0


# -- write-ring / lookup -------------------------------------------------------


def cmd_write_ring(args: argparse.Namespace) -> int:
    cb = _load(args.builder)
    names = _names(cb, args.ring)
    datas = {n: cb.ring_data(n) for n in names}  # validate all before writing any
    os.makedirs(args.dir, exist_ok=True)
    for n, data in datas.items():
        path = os.path.join(args.dir, f"{n}.ring")
        checksum = write_ring(path, data)
        print(f"wrote {path} (part power {data.part_power}, replicas {data.replicas}, checksum {checksum.hex()[:16]})")
    return 0


def _is_ring_file(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(RING_MAGIC)) == RING_MAGIC
    except OSError:
        return False


def _secret(args: argparse.Namespace) -> str:
    if args.secret:
        return str(args.secret)
    from common.config import DEFAULT_HASH_SECRET, ConfigError, load_config

    if args.config:
        try:
            return load_config(args.config).hash_secret
        except ConfigError as exc:
            raise CommandError(_one_line(exc)) from None
    return os.environ.get("RINGSTACK_HASH_SECRET") or DEFAULT_HASH_SECRET


def cmd_lookup(args: argparse.Namespace) -> int:
    from ring import _cli_render as render

    text = args.name[1:] if args.name.startswith("/") else args.name
    pieces = text.split("/", 2)
    if not pieces[0] or any(p == "" for p in pieces):
        raise CommandError(f"bad name {args.name!r}: expected ACCOUNT[/CONTAINER[/OBJECT]]")
    account = pieces[0]
    container = pieces[1] if len(pieces) > 1 else None
    obj = pieces[2] if len(pieces) > 2 else None
    secret = _secret(args)
    if _is_ring_file(args.builder):
        ring = Ring(args.builder, secret, reload_interval=float("inf"))
        ring_name = args.ring or os.path.basename(args.builder).removesuffix(".ring")
    else:
        cb = _load(args.builder)
        ring_name = args.ring or ("object" if obj else "container" if container else "account")
        ring = Ring.from_data(cb.ring_data(ring_name), secret)
    part, primaries = ring.get_nodes(account, container, obj)
    handoffs = []
    for dev in ring.get_more_nodes(part):
        if len(handoffs) >= args.handoffs:
            break
        handoffs.append(dev)
    if args.json:
        _print_json({"ring": ring_name, "name": "/" + text, "partition": part,
                     "primaries": [d.to_json() for d in primaries], "handoffs": [d.to_json() for d in handoffs]})
        return 0
    render.print_lookup(_console(), ring_name, "/" + text, part, primaries, handoffs)
    return 0


# -- wiring -------------------------------------------------------------------


def _guard(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the cores' domain errors into one-line ``CommandError``s."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except CommandError:
            raise
        except _ERRORS as exc:
            raise CommandError(_one_line(exc)) from None
        except OSError as exc:
            raise CommandError(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from None

    return run


def register(sub: Any, serve_sub: Any) -> None:
    p = sub.add_parser("ring", help="build rings: ringstack ring BUILDER create|add|remove|...",
                       description=__doc__.splitlines()[0])
    p.add_argument("builder", metavar="BUILDER", help="the builder file (or, for lookup, a ring file)")
    cmds = p.add_subparsers(dest="ring_command", metavar="COMMAND")
    cmds.required = True

    def cmd(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        c = cmds.add_parser(name, help=help)
        c.set_defaults(func=_guard(func))
        return c

    ring_opt = {"default": None, "metavar": "NAME", "help": "act on one ring (object, container, account)"}
    c = cmd("create", cmd_create, "create the object, container and account rings")
    c.add_argument("part_power", metavar="PART_POWER")
    c.add_argument("replicas", metavar="REPLICAS")
    c.add_argument("min_part_hours", metavar="MIN_PART_HOURS")
    c.add_argument("--overload", default="0", help="fraction of extra weight a drive may take for dispersion")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--ring", **ring_opt)
    for n in RING_NAMES:
        c.add_argument(f"--{n}-part-power", default=None, metavar="N", help=f"part power of the {n} ring")
    c = cmd("add", cmd_add, "add drives: r1z2-10.0.0.3:6200/sdb 100 [...], or --file drives.csv|json")
    c.add_argument("devices", nargs="*", metavar="DEVICE WEIGHT")
    c.add_argument("--file", help="CSV (header: region,zone,ip,port,device,weight[,host,meta]) or JSON list")
    c.add_argument("--host", help="host name for these drives (default ip:port)")
    c = cmd("remove", cmd_remove, "remove drives: d<id>, <host>/<device> or r1z2-10.0.0.3:6200/sdb")
    c.add_argument("searches", nargs="+", metavar="SEARCH")
    c.add_argument("--yes", action="store_true", help="act on every drive a search matches")
    c = cmd("set-weight", cmd_set_weight, "set weights: SEARCH WEIGHT [SEARCH WEIGHT ...]")
    c.add_argument("pairs", nargs="+", metavar="SEARCH WEIGHT")
    c.add_argument("--yes", action="store_true", help="act on every drive a search matches")
    c = cmd("rebalance", cmd_rebalance, "rebalance the rings")
    c.add_argument("--ring", **ring_opt)
    c.add_argument("--json", action="store_true")
    c = cmd("show", cmd_show, "rings and drives")
    c.add_argument("--ring", **ring_opt)
    c.add_argument("--json", action="store_true")
    c = cmd("dispersion", cmd_dispersion, "replicas per failure domain, tier by tier")
    c.add_argument("--ring", **ring_opt)
    c.add_argument("--json", action="store_true")
    c = cmd("validate", cmd_validate, "check the rings against the inventory")
    c.add_argument("--ring", **ring_opt)
    c = cmd("write-ring", cmd_write_ring, "write DIR/object.ring, container.ring, account.ring")
    c.add_argument("dir", metavar="DIR")
    c.add_argument("--ring", **ring_opt)
    c = cmd("lookup", cmd_lookup, "partition, primaries and handoffs of ACCOUNT[/CONTAINER[/OBJECT]]")
    c.add_argument("name", metavar="ACCOUNT/CONTAINER/OBJECT")
    c.add_argument("--ring", **ring_opt)
    c.add_argument("--secret", help="cluster hash secret (default: --config, $RINGSTACK_HASH_SECRET, dev default)")
    c.add_argument("--config", help="cluster TOML file to take the hash secret from")
    c.add_argument("--handoffs", type=int, default=3, help="handoffs to list (default: %(default)s)")
    c.add_argument("--json", action="store_true")
