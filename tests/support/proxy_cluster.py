"""A small real cluster for the proxy's integration tests: four storage node
processes (one drive each, distinct zones), rings written for their ports,
and one proxy process, all on 127.0.0.1 port-0 listeners.

The rings are built by hand (replica r of partition p on device (p + r) % 4)
so a test knows exactly which nodes are primaries and which is the first
handoff; they are real ring files in the real format, read by the real proxy.
"""

from __future__ import annotations

import http.client
import signal
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from common.timestamp import Timestamp
from ring.hashing import get_partition
from ring.ringfile import RingData, RingDevice, write_ring
from tests.support.procs import ServerProcess, ringstack_argv, start_server

SECRET = "proxy-test-secret"
PART_POWER = 4
NODES = 4


@dataclass
class Cluster:
    root: Path
    config: Path
    storage: list[ServerProcess]
    proxy: ServerProcess
    devices: list[RingDevice] = field(default_factory=list)

    # -- placement -----------------------------------------------------------
    def part(self, account: str, container: str | None = None, obj: str | None = None) -> int:
        return get_partition(SECRET, PART_POWER, account, container, obj)

    def primaries(self, account: str, container: str | None = None, obj: str | None = None) -> list[int]:
        p = self.part(account, container, obj)
        return [(p + r) % NODES for r in range(3)]

    # -- processes -------------------------------------------------------------
    def storage_argv(self, i: int, port: int) -> list[str]:
        return ringstack_argv(
            "serve", "storage", "--config", str(self.config), "--drives", f"d{i}={self.root / f'node{i}' / f'd{i}'}",
            "--port", str(port),
        )

    def kill_node(self, i: int) -> None:
        self.storage[i].kill(signal.SIGKILL)

    def restart_node(self, i: int) -> None:
        self.storage[i] = start_server(self.storage_argv(i, self.devices[i].port))

    def stop(self) -> None:
        self.proxy.kill(signal.SIGTERM)
        for s in self.storage:
            s.kill(signal.SIGKILL)

    # -- clients -------------------------------------------------------------
    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                port: int | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.proxy.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def node_object(self, i: int, account: str, container: str, obj: str, method: str = "HEAD") -> tuple[int, dict[str, str], bytes]:
        """Ask storage node ``i`` directly for its replica (bypassing the proxy)."""
        dev = self.devices[i]
        path = f"/{dev.device}/{self.part(account, container, obj)}/{quote(account)}/{quote(container)}/{quote(obj)}"
        return self.request(method, path, port=dev.port)

    def node_timestamp(self, i: int, account: str, container: str, obj: str) -> Timestamp | None:
        status, headers, _ = self.node_object(i, account, container, obj)
        if status != 200:
            return None
        return Timestamp.parse(headers.get("x-backend-timestamp") or headers["x-timestamp"])


def start_cluster(root: Path, *, proxy_settings: str = "") -> Cluster:
    config = root / "cluster.toml"
    config.write_text(
        f'[cluster]\nhash_secret = "{SECRET}"\nring_dir = "{root}"\n\n'
        "[proxy]\nconn_timeout = 0.5\nnode_timeout = 3.0\npost_quorum_timeout = 0.5\n"
        "client_timeout = 3.0\nrecheck_container_existence = 1.0\nrecheck_account_existence = 1.0\n"
        'pipeline = "catch_errors proxy_logging healthcheck"\n' + proxy_settings
    )
    cluster = Cluster(root, config, [], None)  # type: ignore[arg-type]
    try:
        for i in range(NODES):
            (root / f"node{i}" / f"d{i}").mkdir(parents=True)
            cluster.storage.append(start_server(cluster.storage_argv(i, 0)))
        cluster.devices = [
            RingDevice(i, f"node{i}", 1, i + 1, "127.0.0.1", cluster.storage[i].port, f"d{i}", 1.0) for i in range(NODES)
        ]
        parts = 1 << PART_POWER
        table = np.array([[(p + r) % NODES for p in range(parts)] for r in range(3)], dtype=np.int32)
        data = RingData(PART_POWER, 3, table, tuple(cluster.devices))
        for name in ("account", "container", "object"):
            write_ring(root / f"{name}.ring", data)
        cluster.proxy = start_server(ringstack_argv("serve", "proxy", "--config", str(config), "--port", "0"))
    except BaseException:
        for s in cluster.storage:
            s.kill()
        raise
    return cluster
