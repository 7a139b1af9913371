"""``ringstack dispersion``: are all N replicas of a sample in place and equal?

Like swift-dispersion-report, with the sample written straight to the storage
nodes (no credentials needed; the proxy is not involved): account
``.dispersion``, one container ``dispersion_<k>`` per sampled container
partition, and in container ``dispersion_objects`` one object
``dispersion_<k>`` per sampled object partition (``k`` is the first number
whose name hashes into that partition, so the names are a pure function of
the ring and the hash secret). ``--coverage`` percent of the partitions are
sampled (default: all of them up to 1024 partitions, else 1%).

``--populate`` (or the first run, when no account replica exists) writes the
sample to every primary, as the proxy would: account, containers (with their
account targets) and objects (with their container targets). The report
asks every primary of every sampled name directly: an object is *found* when
all N primaries answer 200 with one X-Timestamp and ETag, a container when
all N answer its REPLICATE info with one row hash and info. ``--json`` prints
``{"object": {"pct_found", "sampled", "copies_expected", "copies_found",
"missing": [...]}, "container": {...}}``; ``missing`` names each name that is
not fully in place with the devices that lack it or differ.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import trio

from common.http import HTTPClient, quote_path
from common.timestamp import Timestamp

ACCOUNT = ".dispersion"
OBJECT_CONTAINER = "dispersion_objects"
BODY = b"dispersion\n"


def sample_partitions(partitions: int, coverage: float | None) -> list[int]:
    if coverage is None:
        coverage = 100.0 if partitions <= 1024 else 1.0
    step = max(1, round(100.0 / max(0.001, min(100.0, coverage))))
    return list(range(0, partitions, step))


def names_for(parts: Iterable[int], part_of: Any, limit_factor: int = 64) -> dict[int, str]:
    """``{partition: dispersion_<k>}`` with the smallest k hashing there."""
    want = set(parts)
    out: dict[int, str] = {}
    k = 0
    limit = max(1024, limit_factor * max(1, len(want)) * 16)
    while want and k < limit:
        name = f"dispersion_{k}"
        p = part_of(name)
        if p in want:
            out[p] = name
            want.discard(p)
        k += 1
    return out


class Dispersion:
    def __init__(self, rings: dict[str, Any], client: HTTPClient | None = None, timeout: float = 10.0,
                 concurrency: int = 32, clock: Callable[[], float] = time.time) -> None:
        self.rings = rings
        self.clock = clock
        self.client = client or HTTPClient()
        self.timeout = timeout
        self.limiter = trio.CapacityLimiter(concurrency)

    def sample(self, coverage: float | None) -> tuple[dict[int, str], dict[int, str]]:
        cr, orr = self.rings["container"], self.rings["object"]
        containers = names_for(sample_partitions(cr.partitions, coverage), lambda n: cr.get_part(ACCOUNT, n))
        objects = names_for(sample_partitions(orr.partitions, coverage),
                            lambda n: orr.get_part(ACCOUNT, OBJECT_CONTAINER, n))
        return containers, objects

    async def _req(self, method: str, dev: Any, path: str, headers: dict[str, str],
                   body: bytes = b"") -> tuple[int, Any]:
        async with self.limiter:
            try:
                resp = await self.client.request(method, dev.address, dev.port, quote_path(path), headers=headers,
                                                 body=body, timeout=self.timeout)
            except Exception:  # a node down counts as a missing replica
                return 0, None
            return resp.status, resp

    # -- populate ----------------------------------------------------------------------
    async def populate(self, containers: dict[int, str], objects: dict[int, str]) -> dict[str, int]:
        ts = Timestamp.from_seconds(self.clock()).internal
        ar, cr, orr = self.rings["account"], self.rings["container"], self.rings["object"]
        apart, anodes = ar.get_nodes(ACCOUNT)
        counts = {"written": 0, "failed": 0}

        def tally(status: int) -> None:
            counts["written" if 200 <= status < 300 else "failed"] += 1

        async def put(dev: Any, path: str, headers: dict[str, str], body: bytes = b"") -> None:
            status, _ = await self._req("PUT", dev, path, headers, body)
            tally(status)

        async with trio.open_nursery() as n:
            for dev in anodes:
                n.start_soon(put, dev, f"/{dev.device}/{apart}/{ACCOUNT}", {"X-Timestamp": ts})
        acct = {"X-Account-Host": ",".join(f"{d.address}:{d.port}" for d in anodes),
                "X-Account-Device": ",".join(d.device for d in anodes), "X-Account-Partition": str(apart)}
        async with trio.open_nursery() as n:
            for name in [*containers.values(), OBJECT_CONTAINER]:
                cpart, cnodes = cr.get_nodes(ACCOUNT, name)
                for dev in cnodes:
                    n.start_soon(put, dev, f"/{dev.device}/{cpart}/{ACCOUNT}/{name}", {"X-Timestamp": ts, **acct})
        cpart, cnodes = cr.get_nodes(ACCOUNT, OBJECT_CONTAINER)
        cont = {"X-Container-Host": ",".join(f"{d.address}:{d.port}" for d in cnodes),
                "X-Container-Device": ",".join(d.device for d in cnodes), "X-Container-Partition": str(cpart)}
        async with trio.open_nursery() as n:
            for name in objects.values():
                opart, onodes = orr.get_nodes(ACCOUNT, OBJECT_CONTAINER, name)
                for dev in onodes:
                    n.start_soon(put, dev, f"/{dev.device}/{opart}/{ACCOUNT}/{OBJECT_CONTAINER}/{name}",
                                 {"X-Timestamp": ts, "Content-Type": "text/plain",
                                  "Content-Length": str(len(BODY)), **cont}, BODY)
        return counts

    async def account_exists(self) -> bool:
        apart, anodes = self.rings["account"].get_nodes(ACCOUNT)
        for dev in anodes:
            status, _ = await self._req("HEAD", dev, f"/{dev.device}/{apart}/{ACCOUNT}", {})
            if 200 <= status < 300:
                return True
        return False

    # -- report ------------------------------------------------------------------------
    async def _check(self, kind: str, names: list[str]) -> dict[str, Any]:
        ring = self.rings[kind]
        copies_found = 0
        missing: list[dict[str, Any]] = []
        replicas = ring.replicas

        async def one(name: str) -> None:
            nonlocal copies_found
            if kind == "object":
                part, nodes = ring.get_nodes(ACCOUNT, OBJECT_CONTAINER, name)
                path = f"/{ACCOUNT}/{OBJECT_CONTAINER}/{name}"
            else:
                part, nodes = ring.get_nodes(ACCOUNT, name)
                path = f"/{ACCOUNT}/{name}"
            seen: dict[str, Any] = {}

            async def probe(dev: Any) -> None:
                if kind == "object":
                    status, resp = await self._req("HEAD", dev, f"/{dev.device}/{part}{path}", {})
                    if status == 200:
                        seen[dev.device] = (resp.headers.get("x-backend-timestamp"), resp.headers.get("etag"))
                else:
                    status, resp = await self._req("REPLICATE", dev, f"/{dev.device}/{part}{path}",
                                                   {"X-Backend-Type": "container"}, b'{"op": "info"}')
                    if status == 200:
                        s = json.loads(resp.body)
                        seen[dev.device] = (s["hash"], json.dumps(s["info"], sort_keys=True), s["deleted"])

            async with trio.open_nursery() as n:
                for dev in nodes:
                    n.start_soon(probe, dev)
            copies_found += len(seen)
            values = list(seen.values())
            majority = max(set(values), key=values.count) if values else None
            lacking = [f"{d.address}:{d.port}/{d.device}" for d in nodes if d.device not in seen]
            differ = [f"{d.address}:{d.port}/{d.device}" for d in nodes
                      if d.device in seen and seen[d.device] != majority]
            if lacking or differ or len(nodes) < replicas:
                missing.append({"name": name, "partition": part, "missing": lacking, "differs": differ,
                                "found": len(seen)})

        async with trio.open_nursery() as n:
            for name in names:
                n.start_soon(one, name)
        total = len(names)
        ok = total - len(missing)
        return {"sampled": total, "all_found": ok, "pct_found": round(100.0 * ok / total, 2) if total else 0.0,
                "copies_expected": total * replicas, "copies_found": copies_found,
                "missing": sorted(missing, key=lambda m: m["partition"])}

    async def report(self, coverage: float | None, populate: bool) -> dict[str, Any]:
        containers, objects = self.sample(coverage)
        out: dict[str, Any] = {"account": ACCOUNT}
        if populate or not await self.account_exists():
            out["populated"] = await self.populate(containers, objects)
        out["container"] = await self._check("container", sorted(containers.values()))
        out["object"] = await self._check("object", sorted(objects.values()))
        return out


def load_rings(config: Any) -> dict[str, Any]:
    from ring.lookup import Ring

    ring_dir = Path(config.ring_dir or ".")
    return {name: Ring(ring_dir / f"{name}.ring", config.hash_secret) for name in ("object", "container", "account")}


def render(result: dict[str, Any]) -> str:
    lines = []
    if "populated" in result:
        p = result["populated"]
        lines.append(f"populated the sample: {p['written']} replicas written, {p['failed']} failed")
    for kind in ("container", "object"):
        r = result[kind]
        lines.append(f"{kind}s: {r['pct_found']:.2f}% of {r['sampled']} found with every replica "
                     f"({r['copies_found']} of {r['copies_expected']} copies)")
        for m in r["missing"][:20]:
            what = ", ".join([*(f"missing on {d}" for d in m["missing"]), *(f"differs on {d}" for d in m["differs"])])
            lines.append(f"  {m['name']} (partition {m['partition']}): {what}")
        if len(r["missing"]) > 20:
            lines.append(f"  ... and {len(r['missing']) - 20} more")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from cli.main import CommandError
    from common.config import ConfigError, load_config
    from ring.ringfile import RingFileError

    try:
        rings = load_rings(load_config(args.config))
    except (ConfigError, RingFileError) as exc:
        raise CommandError(str(exc)) from exc

    async def run() -> dict[str, Any]:
        return await Dispersion(rings).report(args.coverage, args.populate)

    result = trio.run(run)
    print(json.dumps(result, sort_keys=True) if args.json else render(result), flush=True)
    return 0
