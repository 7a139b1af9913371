"""Helpers of the listing/expiry fault tests: run the real container/account
replicators, updater and expirer against the real servers of a test cluster
(in this process: a process start costs ~2 s of CPU on a busy machine; the
``--once`` commands are exercised by the dispersion/status integration test),
and read every container replica's listing straight from its storage node."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio

from common.config import load_config
from ring.lookup import Ring
from tests.support.cluster import Cluster


def rings(cluster: Cluster) -> dict[str, Ring]:
    return {name: Ring(cluster.layout.ring_dir / f"{name}.ring", cluster.hash_secret, reload_interval=0.0)
            for name in ("object", "container", "account")}


def live(cluster: Cluster) -> list[int]:
    return [i for i in range(len(cluster.layout.nodes)) if cluster.nodes[i] is not None]


def run_daemons(cluster: Cluster, roles: tuple[str, ...], now: float | None = None) -> dict[str, list[dict]]:
    """One pass of each role on every live node, nodes in parallel, roles in
    the order given. Roles: updater, container, account, expirer."""
    from replicator.db_replicator import DbReplicator
    from replicator.expirer import expirer_pass
    from replicator.updater import updater_pass
    from storage_node.server import build_context

    config = load_config(cluster.config_path)
    rs = rings(cluster)
    out: dict[str, list[dict]] = {r: [] for r in roles}

    async def one(role: str, i: int) -> None:
        node = cluster.layout.nodes[i]
        drives = {d: Path(p) for d, p in node.drives}
        me = ("127.0.0.1", node.port)
        if role in ("container", "account"):
            out[role].append(await DbReplicator(role, rs[role], drives, me).run_pass())
            return
        ctx = build_context(config, drives)
        if role == "updater":
            out[role].append(await updater_pass(ctx))
        else:
            clock = (lambda: now) if now is not None else ctx.clock
            out[role].append(await expirer_pass(ctx, rs["object"], rs["container"], me, clock=clock))

    async def main() -> None:
        for role in roles:
            async with trio.open_nursery() as nursery:
                for i in live(cluster):
                    nursery.start_soon(one, role, i)

    trio.run(main)
    return out


def run_until_quiet(cluster: Cluster, roles: tuple[str, ...], max_rounds: int = 5) -> list[dict]:
    """Rounds of ``roles`` on every live node until one changes nothing (FAULTS.md)."""
    rounds = []
    for _ in range(max_rounds):
        out = run_daemons(cluster, roles)
        rounds.append(out)
        if not any(r["changed"] for rs in out.values() for r in rs):
            return rounds
    raise AssertionError(f"not quiet after {max_rounds} rounds: {rounds[-1]}")


def backend(port: int, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes = b"") -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, quote(path), body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def container_listings(cluster: Cluster, account: str, container: str) -> dict[str, list[str] | None]:
    """Every container replica's listing (names), asked on its own node;
    None for a replica that does not answer 200/204."""
    part, nodes = rings(cluster)["container"].get_nodes(account, container)
    out: dict[str, list[str] | None] = {}
    for dev in nodes:
        try:
            status, body, _ = backend(dev.port, "GET", f"/{dev.device}/{part}/{account}/{container}",
                                      {"Accept": "application/json"})
        except OSError:  # node down
            out[dev.device] = None
            continue
        out[dev.device] = (sorted(row["name"] for row in json.loads(body)) if status == 200
                           else [] if status == 204 else None)
    return out


def db_summaries(cluster: Cluster, kind: str, account: str, container: str | None = None) -> list[Any]:
    """``REPLICATE info`` of every primary replica of a database (None: absent)."""
    ring = rings(cluster)[kind]
    part, nodes = ring.get_nodes(account, container) if container else ring.get_nodes(account)
    name = f"/{account}" + (f"/{container}" if container else "")
    out = []
    for dev in nodes:
        status, body, _ = backend(dev.port, "REPLICATE", f"/{dev.device}/{part}{name}",
                                  {"X-Backend-Type": kind}, b'{"op": "info"}')
        out.append(json.loads(body) if status == 200 else None)
    return out


def async_pending_count(cluster: Cluster) -> int:
    """Queued container updates on every drive of the cluster."""
    from storage_node import async_pending as ap
    from storage_node.index import open_env

    total = 0
    for path in cluster.drive_paths():
        if (path / "index.lmdb").exists():
            total += len(ap.pending_updates(open_env(path), 1_000_000))
    return total
