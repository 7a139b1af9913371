"""``ringstack bench cpu``: where an object operation's CPU goes, by process
and by component, for ringstack and, side by side, a Swift all-in-one.

``bench objects`` says how much CPU an operation costs; this says where it
goes. It runs one timed phase of the same load (``bench objects``' load
generator: PUT or GET of one size at one concurrency) against each system and,
in the middle of the phase, samples the whole machine with
``perf record -a`` (every core, ``--frequency`` times a second, idle cores
included). Each sample is charged to

- a **role**, by the process it hit: ``proxy``, ``storage node`` (ringstack:
  objects, containers and accounts in one process), ``object server``,
  ``container server``, ``account server`` (Swift), ``load generator``
  (this process), ``idle``, or ``other`` (kernel threads, Swift's memcached,
  the rest of the machine); and
- a **component**, by the shared object its instruction pointer was in:
  ``kernel``, ``interpreter`` (libpython: Python code and the objects it
  makes), ``MD5`` (libcrypto: OpenSSL, where hashlib's MD5 runs; the ETag),
  ``checksum`` (the xxh3 and BLAKE3 extensions), ``other native`` (libc, our
  Cython modules, the HTTP parser, ...).

Shares become milliseconds of CPU per operation: a share ``s`` of the samples
over a window of ``W`` seconds on ``C`` cores is ``s * W * C`` CPU-seconds,
divided by the operations the window saw (the phase's rate times ``W``).
Worker threads are told apart from each process's main thread (the event loop
in ringstack's servers), and the voluntary plus involuntary context switches
of each role's threads (those alive at both ends of the phase) are counted
per operation.

The side not being measured is frozen (SIGSTOP) during the other side's
phase, as in ``bench objects --interleave``.

Needs ``perf`` (Debian: ``linux-perf``) and the right to sample every process
(root, or ``kernel.perf_event_paranoid`` <= 0). Figures are for looking at
what to change next, not for goals: ``bench objects`` measures those.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psutil
import trio

from benchmarks import bench_objects as bo
from benchmarks._common import bar_plot, emit

HELP = "where an object PUT/GET's CPU goes (perf, by process and component), ringstack beside Swift"

COMPONENTS = ("kernel", "interpreter", "MD5", "checksum", "other native")
IDLE, OTHER, CLIENT = "idle", "other", "load generator"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="PUT", choices=("PUT", "GET"), help="operation to profile")
    p.add_argument("--size", type=int, default=4 * bo.MIB, help="object size in bytes")
    p.add_argument("--concurrency", type=int, default=8, help="client concurrency")
    p.add_argument("--seconds", type=float, default=16.0, help="length of the phase")
    p.add_argument("--record", type=float, default=6.0,
                   help="seconds sampled, ending 2 s before the phase does")
    p.add_argument("--frequency", type=int, default=999, help="samples per second per core")
    p.add_argument("--workers", type=int, default=1, help="proxy (and Swift server) worker processes")
    p.add_argument("--swift", default="auto", help="Swift venv for the side-by-side run ('no' to skip)")


# -- the pure core: samples -> milliseconds per operation ------------------------------

def parse_perf_script(lines: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """``(pid, tid, dso)`` from ``perf script -F pid,tid,ip,dso`` lines
    (``  123/456  ffffffff81000000 ([kernel.kallsyms])``); other lines are skipped."""
    for line in lines:
        parts = line.split()
        if len(parts) < 3 or "/" not in parts[0] or not parts[-1].startswith("("):
            continue
        pid, _, tid = parts[0].partition("/")
        if not (pid.isdigit() and tid.isdigit()):
            continue
        yield int(pid), int(tid), parts[-1][1:-1] if parts[-1].endswith(")") else parts[-1][1:]


def component_of(dso: str) -> str:
    """The component a sample's shared object belongs to (module docstring)."""
    name = os.path.basename(dso)
    if name.startswith("[kernel"):
        return "kernel"
    if name.startswith("libpython"):
        return "interpreter"
    if name.startswith("libcrypto"):
        return "MD5"
    if name.startswith(("_xxhash", "blake3")):
        return "checksum"
    return "other native"


def role_of(cmdline: list[str]) -> str | None:
    """A server process's role from its command line, or None."""
    joined = " ".join(cmdline)
    if "serve proxy" in joined or "swift-proxy-server" in joined:
        return "proxy"
    if "serve storage" in joined:
        return "storage node"
    for kind in ("object", "container", "account"):
        if f"swift-{kind}-server" in joined:
            return f"{kind} server"
    return None


def tally(samples: Iterable[tuple[int, int, str]], roles: dict[int, str],
          client_pid: int) -> Counter[tuple[str, str, str]]:
    """Samples counted by ``(role, thread, component)``; ``thread`` is
    ``main`` (a process's first thread) or ``workers``. Pid 0 is ``idle``."""
    out: Counter[tuple[str, str, str]] = Counter()
    for pid, tid, dso in samples:
        if pid == 0:
            out[(IDLE, "", "")] += 1
            continue
        role = CLIENT if pid == client_pid else roles.get(pid, OTHER)
        out[(role, "main" if pid == tid else "workers", component_of(dso))] += 1
    return out


def per_op(counts: Counter[tuple[str, str, str]], window_s: float, cpus: int, ops: float) -> dict[str, Any]:
    """Milliseconds of CPU per operation by role and component (module
    docstring), with each role's main-thread share and the totals."""
    total = sum(counts.values())
    scale = window_s * cpus * 1000 / max(total, 1) / max(ops, 1e-9)
    roles: dict[str, dict[str, float]] = {}
    for (role, thread, comp), n in counts.items():
        r = roles.setdefault(role, {c: 0.0 for c in (*COMPONENTS, "main thread")} if role != IDLE else {})
        ms = n * scale
        if role == IDLE:
            r["idle"] = r.get("idle", 0.0) + ms
            continue
        r[comp] += ms
        if thread == "main":
            r["main thread"] += ms
    for r in roles.values():
        r["total"] = sum(v for k, v in r.items() if k in COMPONENTS or k == "idle")
    return {"samples": total, "ms_per_op": {k: {c: round(v, 2) for c, v in r.items()} for k, r in roles.items()}}


def server_ms(rows: dict[str, dict[str, float]], component: str) -> float:
    """A component's milliseconds per operation summed over the server roles."""
    return round(sum(r.get(component, 0.0) for k, r in rows.items() if k not in (IDLE, OTHER, CLIENT)), 2)


def table(side: str, head: str, figures: dict[str, Any], switches: dict[str, float]) -> str:
    """The per-operation figures as a text table."""
    cols = (*COMPONENTS, "total", "main thread")
    lines = [f"# {side} {head}: ms of CPU per operation ({figures['samples']} samples)",
             f"  {'role':16}" + "".join(f"{c:>13}" for c in cols) + f"{'switches/op':>13}"]
    rows = figures["ms_per_op"]
    for role in sorted(rows, key=lambda r: (r in (IDLE, OTHER, CLIENT), -rows[r].get("total", 0.0))):
        r = rows[role]
        cells = "".join(f"{r.get(c, 0.0):13.2f}" if c in r else f"{'':13}" for c in cols)
        sw = f"{switches[role]:13.0f}" if role in switches else ""
        lines.append(f"  {role:16}{cells}{sw}")
    return "\n".join(lines)


# -- the shell: processes, perf, phases ------------------------------------------------

def _roles(pids: list[int]) -> dict[int, str]:
    out = {}
    for p in bo._procs(pids):
        try:
            role = role_of(p.cmdline())
        except psutil.NoSuchProcess:
            continue
        if role is not None:
            out[p.pid] = role
    return out


def _switches(roles: dict[int, str]) -> dict[tuple[str, int], int]:
    """Context switches so far of every thread of the role processes."""
    out = {}
    for pid, role in roles.items():
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    out[(role, int(tid))] = context_switches(f)
            except (OSError, ValueError):
                continue
    return out


def context_switches(status_lines: Iterable[str]) -> int:
    """Voluntary plus involuntary context switches from a ``/proc/.../status``."""
    return sum(int(line.split()[1]) for line in status_lines
               if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))


def switches_per_op(before: dict[tuple[str, int], int], after: dict[tuple[str, int], int],
                    ops: int) -> dict[str, float]:
    """Per role: context switches per operation of the threads alive at both ends."""
    by_role: dict[str, int] = {}
    for key, n in after.items():
        if key in before:
            by_role[key[0]] = by_role.get(key[0], 0) + n - before[key]
    return {role: n / max(ops, 1) for role, n in by_role.items()}


async def _profile(target: bo.Target, args: argparse.Namespace, perf: str, data: str) -> dict[str, Any]:
    """One phase on ``target`` with ``perf record`` over its middle; the table printed and returned."""
    roles = _roles(target.pids)
    delay = max(0.0, args.seconds - args.record - 2.0)
    names: list[str] = []
    if args.method == "GET":
        await bo._phase(target, "PUT", args.size, args.concurrency, min(args.seconds, 8.0), names)
    s0 = _switches(roles)

    async def record() -> None:
        await trio.sleep(delay)
        done = await trio.run_process([perf, "record", "-a", "-F", str(args.frequency), "-o", data, "--",
                                       "sleep", str(args.record)], capture_stdout=True, capture_stderr=True,
                                      check=False)
        if done.returncode != 0:
            raise RuntimeError(f"perf record failed: {done.stderr.decode(errors='replace').strip()[-500:]}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(record)
        phase = await bo._phase(target, args.method, args.size, args.concurrency, args.seconds, names)
    switches = switches_per_op(s0, _switches(roles), phase["ops"])
    script = await trio.run_process([perf, "script", "-F", "pid,tid,ip,dso", "-i", data],
                                    capture_stdout=True, capture_stderr=True)
    counts = tally(parse_perf_script(script.stdout.decode(errors="replace").splitlines()), roles, os.getpid())
    figures = per_op(counts, args.record, os.cpu_count() or 1, phase["ops_per_s"] * args.record)
    head = f"{args.method} {args.size} B x{args.concurrency}, {phase['ops_per_s']} ops/s"
    print(table(target.name, head, figures, switches), flush=True)
    return {"phase": phase, **figures, "switches_per_op": {k: round(v, 1) for k, v in switches.items()}}


async def _run(targets: list[bo.Target], args: argparse.Namespace, perf: str, tmp: str) -> dict[str, Any]:
    await bo.create_bench_container(targets)
    out: dict[str, Any] = {}
    try:
        for target in targets:
            bo._freeze_others(target, targets)
            out[target.name] = await _profile(target, args, perf, os.path.join(tmp, f"{target.name}.data"))
    finally:
        bo._freeze_others(None, targets)
    return out


def unavailable() -> str | None:
    """Why this bench cannot run here (``benchmarks/cli.py``), or None."""
    return None if shutil.which("perf") else "needs perf (Debian: apt install linux-perf)"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from cli.main import CommandError

    perf = shutil.which("perf")
    if perf is None:
        raise CommandError(f"bench cpu {unavailable()}")
    if args.record + 2.0 > args.seconds:
        raise CommandError("--record must be at least 2 s shorter than --seconds")
    results: dict[str, Any] = {"method": args.method, "size": args.size, "concurrency": args.concurrency,
                               "record_seconds": args.record, "cpus": os.cpu_count()}
    venv = bo._swift_venv(args)
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as root:
        cluster, target = bo._ringstack(args, os.path.join(root, "ringstack"))
        aio = None
        try:
            targets = [target]
            if venv is not None:
                aio, error = bo._start_swift(venv, root, args)
                if aio is None:
                    results["swift"] = {"error": error}
                else:
                    targets.append(bo._swift_target(aio))
            results.update(trio.run(_run, targets, args, perf, root))
        finally:
            if aio is not None:
                aio.stop()
            cluster.stop()
    emit("cpu", results, getattr(args, "out", None))
    _plot(results, getattr(args, "out", None))
    return results


def _plot(results: dict[str, Any], out: str | None) -> None:
    """Server CPU per operation by component, one bar per system."""
    if not out:
        return
    sides = [s for s in ("ringstack", "swift") if "ms_per_op" in results.get(s, {})]
    if not sides:
        return
    series: dict[str, Sequence[float | None]] = {s: [server_ms(results[s]["ms_per_op"], c) for c in COMPONENTS] for s in sides}
    os.makedirs(out, exist_ok=True)
    bar_plot(os.path.join(out, "cpu_by_component.png"),
             f"{results['method']} {results['size']} B x{results['concurrency']}: server CPU per operation",
             list(COMPONENTS), series, "ms per operation")
