"""``ringstack dev up|down``: the whole cluster on one command (``make run``).

``ringstack dev up [--data DIR] [--port 8080]`` creates what is missing under
DIR (default ``./devdata``): inventory and rings (4 nodes x 2 drives, one zone
per node, 127.0.0.1), the cluster config with Swift all-in-one's users, drive
directories. It then starts the storage nodes, the proxy and, when their
parts exist, the replicators and the placement service; waits for each
``READY`` line; writes ``DIR/cluster.json`` (every process's role, PID, port
and the exact argv that restarts it, drive paths, config path, users);
prints how to use it; and stays in the foreground until Ctrl-C or SIGTERM,
when it stops every process it started (SIGTERM, then SIGKILL after 10 s).
A process that dies is reported, never restarted.

``--no-wait`` leaves the cluster running in the background and returns;
``ringstack dev down --data DIR`` stops it (or a foreground ``dev up``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from cli import _devcluster as dc
from cli import _devplacement
from cli._devprocs import REPO, Child, alive, cmdline, is_ours, send_signal, stop_pids, wait_ready

HEARTBEAT_EVERY = 10.0


def register(sub: Any, serve_sub: Any) -> None:
    dev = sub.add_parser("dev", help="run a whole local cluster (make run)")
    dev_sub = dev.add_subparsers(dest="dev_command", metavar="COMMAND")
    dev_sub.required = True
    up = dev_sub.add_parser("up", help="build rings/config if absent and start every process")
    up.add_argument("--data", default="devdata", help="data directory (default ./devdata)")
    up.add_argument("--port", type=int, default=dc.DEFAULT_PROXY_PORT, help="proxy port (default 8080; 0: any)")
    up.add_argument("--workers", type=int, default=1, help="proxy worker processes (default 1)")
    up.add_argument("--base-port", type=int, default=dc.DEFAULT_STORAGE_PORTS[0],
                    help="first storage port for a new cluster (node i gets BASE+10*(i-1); 0: any free)")
    up.add_argument("--nodes", type=int, default=4, help="storage nodes for a new cluster (default 4)")
    up.add_argument("--drives", type=int, default=2, help="drives per node for a new cluster (default 2)")
    up.add_argument("--part-power", type=int, default=dc.DEFAULT_PART_POWER, help="partition power (new cluster)")
    up.add_argument("--placement-port", type=int, default=dc.DEFAULT_PLACEMENT_PORT,
                    help="placement API port (default 8778; 0: any)")
    up.add_argument("--no-placement", action="store_true", help="do not start the placement service")
    up.add_argument("--no-replicators", action="store_true", help="do not start the replicators")
    up.add_argument("--no-wait", action="store_true", help="start in the background and return")
    up.add_argument("--demo-instances", type=int, default=3,
                    help="VMs the scheduler places on a new cluster's hosts, to look at (default 3; 0: none)")
    up.set_defaults(func=cmd_up)
    down = dev_sub.add_parser("down", help="stop the cluster described by DIR/cluster.json")
    down.add_argument("--data", default="devdata", help="data directory (default ./devdata)")
    down.set_defaults(func=cmd_down)


# -- commands ---------------------------------------------------------------------

def describe(layout: dc.Layout, children: list[Child], proxy_port: int, state: str) -> dict[str, Any]:
    from common.config import load_config

    users = load_config(layout.config_path).section("tempauth").get("users") or dc.DEFAULT_USERS
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    return {
        "state": state,
        "supervisor_pid": os.getpid(),
        "data": str(layout.data_dir),
        "config": str(layout.config_path),
        "ring_dir": str(layout.ring_dir),
        "builder": str(layout.builder_path),
        "proxy_url": proxy_url,
        "auth_url": f"{proxy_url}/auth/v1.0",
        "processes": [
            {
                "role": c.spec.role,
                "name": c.spec.name,
                "pid": c.proc.pid,
                "port": c.port,
                "argv": c.argv_with_port(),
                "cwd": str(REPO),
                "log": str(c.log_path),
                **({"node": c.spec.node} if c.spec.node is not None else {}),
                **c.spec.extra,
            }
            for c in children
        ],
        "drives": [
            {"node": n.name, "zone": n.zone, "port": n.port, "device": dev, "path": path}
            for n in layout.nodes for dev, path in n.drives
        ],
        "users": dc.users_summary(users),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def banner(desc: dict[str, Any]) -> str:
    auth = desc["auth_url"]
    lines = [f"ringstack dev cluster is up (data {desc['data']})", ""]
    for p in desc["processes"]:
        where = f"127.0.0.1:{p['port']}" if p["port"] else "-"
        extra = f"  drives {', '.join(p['drives'])}" if p.get("drives") else ""
        lines.append(f"  {p['role']:<11} {p['name']:<20} {where:<16} pid {p['pid']}{extra}")
    lines += ["", f"  Swift API   {desc['proxy_url']}/v1/AUTH_<account>", f"  auth        {auth}"]
    if desc.get("placement_url"):
        lines.append(f"  placement   {desc['placement_url']}  (token: admin; ringstack placement/schedule ...)")
    if desc.get("demo_instances"):
        placed = ", ".join(f"{i['name']} on {i['host']}" for i in desc["demo_instances"])
        lines.append(f"  scheduled   {placed}")
    lines += ["",
              "  users (account:user  key  role):"]
    for u in desc["users"]:
        lines.append(f"    {u['user']:<14} {u['key']:<9} {', '.join(u['roles'])} of {u['account']}")
    lines += [
        "",
        "  try:",
        f"    swift -A {auth} -U test:tester -K testing stat",
        f"    swift -A {auth} -U test:tester -K testing upload mycontainer README.md",
        f"    swift -A {auth} -U test:tester -K testing list mycontainer",
        f"    swift -A {auth} -U test:tester -K testing download mycontainer README.md -o -",
        f"    curl -i -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' {auth}",
    ]
    if _s3_enabled():
        lines.append(f"    AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing "
                     f"aws --endpoint-url {desc['proxy_url']} s3 ls")
    if desc.get("placement_url"):
        env = f"RINGSTACK_PLACEMENT_URL={desc['placement_url']} {_ringstack()}"
        lines.append(f"    {env} schedule list")
        lines.append(f"    {env} schedule create vm1 --resources VCPU:1,MEMORY_MB:512")
    lines += [
        "",
        f"  cluster description {desc['data']}/cluster.json, logs {desc['data']}/logs/",
        f"  stop it with: ringstack dev down --data {desc['data']}" if desc.get("detached")
        else "  Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def _ringstack() -> str:
    """How to run this ringstack from the user's shell (``make run`` starts
    ``.venv/bin/ringstack``, which is not on PATH unless the venv is active)."""
    exe = Path(sys.argv[0])
    if exe.name != "ringstack" or shutil.which("ringstack") == str(exe.absolute()):
        return "ringstack"
    rel = os.path.relpath(exe)
    return rel if not rel.startswith("..") else str(exe.absolute())


def _s3_enabled() -> bool:
    """The proxy pipeline has an S3 middleware (Swift's s3api convention:
    access key ``account:user``, secret = the tempauth key)."""
    try:
        from proxy.pipeline import FEATURES
    except ImportError:
        return False
    return any("s3" in name for name in FEATURES)


def cmd_up(args: argparse.Namespace) -> int:
    from cli.main import CommandError

    data = Path(args.data).resolve()
    state_path = data / "cluster.json"
    if state_path.exists():
        try:
            old = json.loads(state_path.read_text())
        except ValueError:
            old = {}
        alive = [p["pid"] for p in old.get("processes", []) if old.get("state") == "running" and alive(p["pid"])]
        if alive:
            raise CommandError(f"a cluster from {data} is already running (pids {alive}); "
                               f"stop it with: ringstack dev down --data {args.data}")
    if args.base_port == 0:
        ports = dc.free_ports(args.nodes)
    else:
        ports = [args.base_port + 10 * i for i in range(args.nodes)]
    try:
        layout = dc.ensure_cluster(data, nodes=args.nodes, drives_per_node=args.drives, storage_ports=ports,
                                   part_power=args.part_power, placement_port=args.placement_port)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    storage = [dc.storage_spec(layout, i) for i in range(len(layout.nodes))]
    others = [dc.proxy_spec(layout, args.port, args.workers)]
    if not args.no_placement and dc.serve_options("placement") is not None and dc.module_exists("scheduler.server"):
        others.append(dc.placement_spec(layout, args.placement_port))
    for role in () if args.no_replicators else dc.REPLICATION_DAEMONS:
        options = dc.serve_options(role)
        if options is None:
            continue
        accepted, required = options
        unknown = required - {"--config", "--drives", "--port"}
        if unknown:
            print(f"warning: not starting {role}: serve {role} needs {sorted(unknown)}", flush=True)
        else:
            others += [dc.replicator_spec(layout, i, accepted, role) for i in range(len(layout.nodes))]
    busy = [s for s in storage + others if s.port and not dc.port_free(s.port)]
    if busy:
        names = ", ".join(f"{s.name} ({s.port})" for s in busy)
        raise CommandError(f"port in use: {names}; is another cluster running? "
                           f"(ringstack dev down --data DIR, or pick --port/--base-port)")
    children: list[Child] = []
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for group in (storage, others):
            started = [Child(s, layout.log_dir / f"{s.name}.log", args.no_wait) for s in group]
            children += started
            for child in wait_ready(started, interrupted=lambda: bool(stop["signal"])):
                children.remove(child)
            if stop["signal"]:
                raise KeyboardInterrupt
        proxy = next(c for c in children if c.spec.role == "proxy")
        desc = describe(layout, children, proxy.port or args.port, "running")
        desc["detached"] = bool(args.no_wait)
        placement = next((c for c in children if c.spec.role == "placement"), None)
        placement_url = f"http://127.0.0.1:{placement.port}" if placement else None
        if placement_url:
            desc["placement_url"] = placement_url
            problem = _devplacement.sync_hosts(placement_url, str(layout.builder_path),
                                               str(layout.ring_dir / "object.ring"), _secret(layout))
            if problem:
                print(problem, flush=True)
            else:
                demo, problem = _devplacement.schedule_demo(placement_url, args.demo_instances)
                desc["demo_instances"] = [{"name": i["name"], "host": i["host"]} for i in demo]
                if problem:
                    print(problem, flush=True)
        _write_json(state_path, desc)
        print(banner(desc), flush=True)
        if args.no_wait:
            return 0
        reported: set[int] = set()
        next_beat = 0.0
        while not stop["signal"]:
            if placement_url and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + HEARTBEAT_EVERY
                _devplacement.heartbeat(placement_url, [c.spec.name for c in children
                                                        if c.spec.role == "storage" and c.proc.poll() is None])
            for c in children:
                if c.proc.poll() is not None and c.proc.pid not in reported:
                    reported.add(c.proc.pid)
                    print(f"{c.spec.name} (pid {c.proc.pid}) exited with status {c.proc.returncode}; "
                          f"not restarted (argv in cluster.json, log {c.log_path})", flush=True)
            time.sleep(0.2)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if children and not (args.no_wait and _all_running(children)):
            print("stopping the cluster...", flush=True)
            stop_pids([c.proc.pid for c in children])
            for c in children:
                c.proc.wait()
            if state_path.exists():
                try:
                    desc = json.loads(state_path.read_text())
                    desc["state"] = "stopped"
                    _write_json(state_path, desc)
                except ValueError:
                    pass
            print("stopped.", flush=True)
        for s, h in old_handlers.items():
            signal.signal(s, h)


def _secret(layout: dc.Layout) -> str:
    from common.config import load_config

    return load_config(layout.config_path).hash_secret


def _all_running(children: list[Child]) -> bool:
    return all(c.proc.poll() is None for c in children)


def cmd_down(args: argparse.Namespace) -> int:
    from cli.main import CommandError

    state_path = Path(args.data).resolve() / "cluster.json"
    if not state_path.exists():
        raise CommandError(f"no cluster.json in {args.data}: nothing to stop")
    desc = json.loads(state_path.read_text())
    pids = [p["pid"] for p in desc.get("processes", []) if is_ours(p, desc["data"])]
    sup = desc.get("supervisor_pid")
    if sup and sup != os.getpid() and alive(sup) and any("dev" in a for a in (cmdline(sup) or [])):
        send_signal(sup, signal.SIGTERM)
    stop_pids(pids)
    desc["state"] = "stopped"
    _write_json(state_path, desc)
    print(f"stopped {len(pids)} processes", file=sys.stderr)
    return 0
