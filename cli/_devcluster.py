"""A whole local cluster on 127.0.0.1: layout, rings, config and process argv.

Shared by ``ringstack dev up`` (``cli.dev``) and the integration tests'
``tests/support/cluster.py``, so what developers run is what tests run.

Layout of a data directory (created on first use, reused afterwards)::

    DIR/ringstack.toml          the cluster config ([cluster], [proxy], [tempauth], [placement])
    DIR/rings/cluster.builder   inventory + builders (the operator's file)
    DIR/rings/{object,container,account}.ring
    DIR/node<i>/d<j>            drives, as directories (node i = zone i)
    DIR/placement/              the placement service's state
    DIR/logs/<process>.log      each process's output
    DIR/cluster.json            what is running (written by ``dev up``)

The builder's inventory is the source of truth for nodes, ports and drives:
a second ``dev up`` reads it back instead of planning again, so a cluster
keeps its rings, secret and data across restarts. Everything here except
``ensure_cluster`` (disk) is pure.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_NAME = "ringstack.toml"
BUILDER_NAME = "cluster.builder"
DEFAULT_PART_POWER = 8
DEFAULT_STORAGE_PORTS = (6210, 6220, 6230, 6240, 6250, 6260, 6270, 6280)
DEFAULT_PROXY_PORT = 8080
DEFAULT_PLACEMENT_PORT = 8778

# Swift all-in-one's users, so scripts written for one work against the other.
DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "admin:admin": {"key": "admin", "groups": [".admin", ".reseller_admin"]},
    "test:tester": {"key": "testing", "groups": [".admin"]},
    "test:tester2": {"key": "testing2", "groups": [".admin"]},
    "test:tester3": {"key": "testing3", "groups": []},
    "test2:tester2": {"key": "testing2", "groups": [".admin"]},
}


@dataclass(frozen=True, slots=True)
class NodeLayout:
    """One storage node: its host name in the inventory, zone, port and drives."""

    name: str
    zone: int
    port: int
    drives: tuple[tuple[str, str], ...]  # (device, absolute path)

    @property
    def drives_arg(self) -> str:
        return ",".join(f"{dev}={path}" for dev, path in self.drives)


@dataclass(frozen=True, slots=True)
class Layout:
    data_dir: Path
    nodes: tuple[NodeLayout, ...]

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_NAME

    @property
    def ring_dir(self) -> Path:
        return self.data_dir / "rings"

    @property
    def builder_path(self) -> Path:
        return self.ring_dir / BUILDER_NAME

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def placement_dir(self) -> Path:
        return self.data_dir / "placement"


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    """A process of the cluster: ``argv`` restarts it exactly."""

    role: str  # storage | proxy | placement | replicator
    name: str
    argv: tuple[str, ...]
    port: int | None
    node: int | None = None  # index into Layout.nodes for storage/replicator
    extra: dict[str, Any] = field(default_factory=dict)


def plan_nodes(data_dir: Path, ports: Sequence[int], drives_per_node: int) -> tuple[NodeLayout, ...]:
    """Node i (1-based) is host ``node<i>`` in zone i with drives ``d<k>``
    numbered across the cluster (d1, d2 on node1; d3, d4 on node2; ...)."""
    nodes = []
    for i, port in enumerate(ports, start=1):
        drives = tuple(
            (f"d{(i - 1) * drives_per_node + j}", str(data_dir / f"node{i}" / f"d{(i - 1) * drives_per_node + j}"))
            for j in range(1, drives_per_node + 1)
        )
        nodes.append(NodeLayout(f"node{i}", i, port, drives))
    return tuple(nodes)


def layout_from_inventory(data_dir: Path, inventory: Any) -> Layout:
    """Read the layout back from a builder's inventory (hosts sorted by name)."""
    nodes = []
    for host in sorted(inventory.hosts.values(), key=lambda h: _natural(h.name)):
        drives = sorted(inventory.drives_of(host.name), key=lambda d: _natural(d.device))
        nodes.append(
            NodeLayout(
                host.name,
                host.zone,
                host.port,
                tuple((d.device, str(data_dir / host.name / d.device)) for d in drives),
            )
        )
    return Layout(data_dir, tuple(nodes))


def _natural(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


# -- config -------------------------------------------------------------------

def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def render_config(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """A TOML document of top-level tables; nested tables become sub-tables
    (``[tempauth.users]``) whose entries are inline tables."""
    out = ["# ringstack cluster config (written by `ringstack dev up`; edit freely)"]
    for name, table in sections.items():
        out.append(f"\n[{_toml_key(name)}]")
        nested = {k: v for k, v in table.items() if isinstance(v, Mapping) and v and all(
            isinstance(x, Mapping) for x in v.values())}
        for key, value in table.items():
            if key not in nested:
                out.append(f"{_toml_key(key)} = {_toml_value(value)}")
        for key, value in nested.items():
            out.append(f"\n[{_toml_key(name)}.{_toml_key(key)}]")
            for k, v in value.items():
                out.append(f"{_toml_key(str(k))} = {_toml_value(v)}")
    return "\n".join(out) + "\n"


def config_sections(
    layout: Layout,
    hash_secret: str,
    users: Mapping[str, Mapping[str, Any]] | None = None,
    placement_port: int = DEFAULT_PLACEMENT_PORT,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {
        "cluster": {"hash_secret": hash_secret, "ring_dir": "rings"},
        "proxy": {"account_autocreate": True},
        "tempauth": {"token_life": 86400, "users": {k: dict(v) for k, v in (users or DEFAULT_USERS).items()}},
        "placement": {"data": str(layout.placement_dir), "port": placement_port},
    }
    for name, table in (extra or {}).items():
        sections.setdefault(name, {}).update(table)
    return sections


# -- rings and files on disk --------------------------------------------------

def build_rings(layout: Layout, part_power: int, replicas: int, now: float) -> None:
    """Inventory (one host per node, one zone each) -> three rings -> ring files."""
    from ring.builderfile import RING_NAMES, ClusterBuilder
    from ring.inventory import Host
    from ring.ringfile import write_ring

    cb = ClusterBuilder.create(part_power, replicas=replicas, min_part_hours=0)
    for node in layout.nodes:
        # compute capacity too: the placement service schedules VMs on these hosts
        cb.inventory.add_host(Host(node.name, 1, node.zone, "127.0.0.1", node.port, vcpus=16,
                                   memory_mb=32768, disk_gb=200), now=now)
        for device, _path in node.drives:
            cb.inventory.add_drive(node.name, device, 100.0, now=now)
    layout.ring_dir.mkdir(parents=True, exist_ok=True)
    for name in RING_NAMES:
        cb.rebalance(name, now)
        write_ring(layout.ring_dir / f"{name}.ring", cb.ring_data(name))
    cb.save(layout.builder_path)


def ensure_cluster(
    data_dir: str | os.PathLike[str],
    *,
    nodes: int = 4,
    drives_per_node: int = 2,
    storage_ports: Sequence[int] = DEFAULT_STORAGE_PORTS,
    part_power: int = DEFAULT_PART_POWER,
    replicas: int = 3,
    users: Mapping[str, Mapping[str, Any]] | None = None,
    placement_port: int = DEFAULT_PLACEMENT_PORT,
    extra_config: Mapping[str, Mapping[str, Any]] | None = None,
    now: float | None = None,
) -> Layout:
    """Create what is missing under ``data_dir`` (rings, config, drive
    directories) and return the layout; an existing builder is reused."""
    from ring.builderfile import ClusterBuilder

    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    builder = data / "rings" / BUILDER_NAME
    if builder.exists():
        layout = layout_from_inventory(data, ClusterBuilder.load(builder).inventory)
    else:
        if len(storage_ports) < nodes:
            raise ValueError(f"need {nodes} storage ports, got {len(storage_ports)}")
        if nodes < replicas:
            raise ValueError(f"{replicas} replicas need at least {replicas} nodes")
        layout = Layout(data, plan_nodes(data, storage_ports[:nodes], drives_per_node))
        build_rings(layout, part_power, replicas, time.time() if now is None else now)
    for node in layout.nodes:
        for _dev, path in node.drives:
            Path(path).mkdir(parents=True, exist_ok=True)
    layout.log_dir.mkdir(exist_ok=True)
    if not layout.config_path.exists():
        sections = config_sections(layout, secrets.token_hex(16), users, placement_port, extra_config)
        tmp = layout.config_path.with_suffix(".tmp")
        tmp.write_text(render_config(sections))
        os.replace(tmp, layout.config_path)
    return layout


# -- processes ------------------------------------------------------------------

def cli_argv(*args: str) -> tuple[str, ...]:
    """The ringstack CLI with this interpreter (works from any directory with
    the editable install)."""
    return (sys.executable, "-m", "cli.main", *args)


def module_exists(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def storage_spec(layout: Layout, i: int) -> ProcessSpec:
    node = layout.nodes[i]
    argv = cli_argv("serve", "storage", "--config", str(layout.config_path), "--drives", node.drives_arg,
                    "--port", str(node.port))
    return ProcessSpec("storage", node.name, argv, node.port, i, {"drives": dict(node.drives)})


def proxy_spec(layout: Layout, port: int, workers: int = 1) -> ProcessSpec:
    argv = cli_argv("serve", "proxy", "--config", str(layout.config_path), "--port", str(port))
    if workers != 1:
        argv += ("--workers", str(workers))
    return ProcessSpec("proxy", "proxy", argv, port)


def placement_spec(layout: Layout, port: int) -> ProcessSpec:
    argv = cli_argv("serve", "placement", "--data", str(layout.placement_dir), "--port", str(port),
                    "--config", str(layout.config_path))
    return ProcessSpec("placement", "placement", argv, port)


def serve_options(role: str) -> tuple[set[str], set[str]] | None:
    """(accepted, required) option strings of ``ringstack serve ROLE``, or
    None when that command does not exist (yet)."""
    import argparse

    from cli.main import build_parser

    def sub_choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    serve = sub_choices(build_parser()).get("serve")
    target = sub_choices(serve).get(role) if serve is not None else None
    if target is None:
        return None
    accepted = set(target._option_string_actions)
    required = {a.option_strings[0] for a in target._actions if a.required and a.option_strings}
    return accepted, required


# per-node background daemons ``dev up`` starts when their serve command exists
REPLICATION_DAEMONS = ("replicator", "container-replicator", "account-replicator", "updater", "expirer")


def replicator_spec(layout: Layout, i: int, accepted: set[str], role: str = "replicator") -> ProcessSpec:
    """``serve <role>`` (one of ``REPLICATION_DAEMONS``) for node i, with the
    options that command takes (config, the node's drives, a port for its /metrics)."""
    node = layout.nodes[i]
    argv = cli_argv("serve", role)
    if "--config" in accepted:
        argv += ("--config", str(layout.config_path))
    if "--drives" in accepted:
        argv += ("--drives", node.drives_arg)
    if "--port" in accepted:
        argv += ("--port", "0")
    return ProcessSpec("replicator", f"{role}-{node.name}", argv, None, i)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now. With ``SO_REUSEADDR``,
    as every ringstack server binds (``common.workers``, trio's listeners):
    a port is busy only while something listens on it, not while the
    connections of a cluster just stopped linger in TIME_WAIT (otherwise
    ``dev up`` right after ``dev down`` or Ctrl-C refused for a minute)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that were free a moment ago (for ring entries,
    which must name a port before the server starts)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def users_summary(users: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    out = []
    for account_user, spec in (users or DEFAULT_USERS).items():
        account = account_user.split(":", 1)[0]
        groups = list(spec.get("groups", []))
        roles = (["reseller_admin"] if ".reseller_admin" in groups else []) + (
            ["admin"] if ".admin" in groups else ["member"])
        out.append({"user": account_user, "key": spec["key"], "account": f"AUTH_{account}", "roles": roles})
    return out
