"""A real local cluster for integration and fault tests: storage node
processes and a proxy on 127.0.0.1, built by the same code as
``ringstack dev up`` (``cli._devcluster``).

    cluster = start_cluster(tmp_path)              # 4 nodes x 2 drives, proxy
    try:
        token, url = cluster.auth("test:tester", "testing")
        ...
        cluster.kill_node(0); cluster.restart_node(0)
        cluster.object_files("AUTH_test", "c", "o")   # replicas on disk
    finally:
        cluster.stop()

Storage ports must be in the ring before the servers start, so they are
picked free (bind to port 0, release) when the rings are built; the proxy
binds port 0 and reports its port on its READY line. Nothing here sleeps to
wait for readiness.
"""

from __future__ import annotations

import http.client
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli import _devcluster as dc
from common.config import load_config
from tests.support.procs import ServerProcess, start_server


@dataclass
class Cluster:
    layout: dc.Layout
    hash_secret: str
    storage_specs: list[dc.ProcessSpec]
    nodes: list[ServerProcess | None]
    proxy: ServerProcess | None
    proxy_spec: dc.ProcessSpec | None = None
    extra: list[ServerProcess] = field(default_factory=list)

    # -- addresses ---------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.layout.config_path

    @property
    def proxy_url(self) -> str:
        assert self.proxy is not None, "cluster started without a proxy"
        return self.proxy.url

    @property
    def proxy_port(self) -> int:
        assert self.proxy is not None
        return self.proxy.port

    @property
    def auth_url(self) -> str:
        return f"{self.proxy_url}/auth/v1.0"

    def node_port(self, i: int) -> int:
        return self.layout.nodes[i].port

    def drive_paths(self, i: int | None = None) -> list[Path]:
        """Drive directories of node ``i`` (all nodes when None)."""
        nodes = self.layout.nodes if i is None else [self.layout.nodes[i]]
        return [Path(path) for n in nodes for _dev, path in n.drives]

    # -- tempauth ------------------------------------------------------------------
    def auth(self, user: str = "test:tester", key: str = "testing") -> tuple[str, str]:
        """(token, storage URL) from the proxy's tempauth."""
        assert self.proxy is not None
        conn = http.client.HTTPConnection(self.proxy.host, self.proxy.port, timeout=30)
        try:
            conn.request("GET", "/auth/v1.0", headers={"X-Auth-User": user, "X-Auth-Key": key})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"auth for {user} failed: {resp.status}")
            return resp.getheader("X-Auth-Token") or "", resp.getheader("X-Storage-Url") or ""
        finally:
            conn.close()

    def connection(self, user: str = "test:tester", key: str = "testing") -> Any:
        """A python-swiftclient ``Connection`` for ``user`` (no retries)."""
        from swiftclient import client as swift

        return swift.Connection(authurl=self.auth_url, user=user, key=key, retries=0)

    # -- faults ------------------------------------------------------------------
    def kill_node(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Kill storage node ``i`` (SIGKILL by default: a crash)."""
        proc = self.nodes[i]
        if proc is not None:
            proc.kill(sig)
        self.nodes[i] = None

    def stop_node(self, i: int) -> None:
        self.kill_node(i, signal.SIGTERM)

    def restart_node(self, i: int) -> ServerProcess:
        """Start node ``i`` again with the same argv (same port and drives)."""
        if self.nodes[i] is not None:
            self.kill_node(i)
        proc = start_server(self.storage_specs[i].argv)
        self.nodes[i] = proc
        return proc

    def restart_proxy(self) -> ServerProcess:
        assert self.proxy_spec is not None
        if self.proxy is not None:
            self.proxy.stop()
        argv = list(self.proxy_spec.argv)
        if self.proxy is not None:
            argv[argv.index("--port") + 1] = str(self.proxy.port)
        self.proxy = start_server(argv)
        return self.proxy

    # -- disk -------------------------------------------------------------------------
    def object_dirs(self, account: str, container: str, obj: str) -> list[Path]:
        """Every existing ``objects/<part>/<suffix>/<hash>`` directory of this
        object on any drive of the cluster (primaries and handoffs)."""
        from ring.hashing import get_partition, object_hash
        from ring.ringfile import read_ring
        from storage_node.paths import object_dir

        ring = read_ring(self.layout.ring_dir / "object.ring")
        part = get_partition(self.hash_secret, ring.part_power, account, container, obj)
        rel = object_dir(part, object_hash(self.hash_secret, account, container, obj))
        return [d / rel for d in self.drive_paths() if (d / rel).is_dir()]

    def object_files(self, account: str, container: str, obj: str, suffix: str = "") -> list[Path]:
        """Files of the object on disk (``.data``, ``.ts``, ...), optionally
        only those ending in ``suffix``."""
        out: list[Path] = []
        for d in self.object_dirs(account, container, obj):
            out += sorted(p for p in d.iterdir() if p.is_file() and p.name.endswith(suffix))
        return out

    # -- teardown ---------------------------------------------------------------------
    def stop(self) -> None:
        procs = [p for p in [self.proxy, *self.extra, *self.nodes] if p is not None]
        for p in procs:  # signal all first so they stop in parallel (no threads: works at exit too)
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in procs:
            p.stop()  # waits, SIGKILL after its timeout
        self.proxy = None
        self.nodes = [None] * len(self.nodes)
        self.extra = []

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_cluster(
    tmp_path: str | Path,
    nodes: int = 4,
    drives_per_node: int = 2,
    *,
    replicas: int = 3,
    part_power: int = 6,
    proxy: bool = True,
    workers: int = 1,
    extra_config: Mapping[str, Mapping[str, Any]] | None = None,
    users: Mapping[str, Mapping[str, Any]] | None = None,
) -> Cluster:
    """Build rings and config under ``tmp_path/cluster`` and start ``nodes``
    storage servers (in parallel) and, unless ``proxy=False``, a proxy.
    ``extra_config`` adds keys to config sections (``{"proxy": {...}}``)."""
    data = Path(tmp_path) / "cluster"
    layout = dc.ensure_cluster(
        data, nodes=nodes, drives_per_node=drives_per_node, storage_ports=dc.free_ports(nodes),
        part_power=part_power, replicas=replicas, users=users, placement_port=0, extra_config=extra_config,
    )
    secret = load_config(layout.config_path).hash_secret
    specs = [dc.storage_spec(layout, i) for i in range(len(layout.nodes))]
    cluster = Cluster(layout, secret, specs, [None] * len(specs), None)
    try:
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            futures = [pool.submit(start_server, s.argv) for s in specs]
        errors = []
        for i, fut in enumerate(futures):
            try:
                cluster.nodes[i] = fut.result()
            except Exception as exc:  # keep the ones that started, so stop() reaps them
                errors.append(exc)
        if errors:
            raise errors[0]
        if proxy:
            cluster.proxy_spec = dc.proxy_spec(layout, 0, workers)
            cluster.proxy = start_server(cluster.proxy_spec.argv)
    except BaseException:
        cluster.stop()
        raise
    return cluster


_SHARED: Cluster | None = None


def shared_cluster(tmp_path_factory: Any) -> Cluster:
    """One default cluster per test process, shared by test modules that only
    add their own containers (cheaper than a cluster per module on a busy
    machine); stopped when the process exits."""
    global _SHARED
    if _SHARED is None:
        import atexit

        _SHARED = start_cluster(tmp_path_factory.mktemp("shared-cluster"))
        atexit.register(_SHARED.stop)
    return _SHARED
