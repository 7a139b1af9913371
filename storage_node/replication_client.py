"""Client side of the object replication verbs, for the replicator.

Each call is one HTTP exchange with the storage server of a node (see
BACKEND_API.md "Replication"); ``Endpoint`` names a drive and partition on a
node. ``push_suffixes`` pipes a ``SUFFIXES`` stream from one node straight
into a ``MERGE`` on another, chunk by chunk (memory flat, invariant 4): the
replicating node never holds a whole file. Errors raise ``ReplicationError``
with the status and the server's message; network trouble raises what the
HTTP client raises (``UpstreamError``, ``trio.TooSlowError``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from common.http import HTTPClient, quote_path


class ReplicationError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    drive: str
    partition: int

    def path(self, suffixes: list[str] | None = None) -> str:
        base = f"/{self.drive}/{self.partition}"
        return quote_path(base + ("/" + "-".join(suffixes) if suffixes else ""))


def _check(status: int, body: bytes) -> None:
    if status >= 300:
        raise ReplicationError(status, body.decode("utf-8", "replace")[:500])


async def suffix_hashes(http: HTTPClient, ep: Endpoint, recompute: list[str] | None = None,
                        timeout: float = 60) -> dict[str, str]:
    """``REPLICATE``: ``{suffix: hash}``; ``recompute`` rehashes those from disk first."""
    r = await http.request("REPLICATE", ep.host, ep.port, ep.path(recompute), timeout=timeout)
    _check(r.status, r.body)
    out: dict[str, str] = json.loads(r.body)
    return out


async def push_suffixes(http: HTTPClient, src: Endpoint, dst: Endpoint, suffixes: list[str] | None = None,
                        timeout: float = 300) -> dict[str, Any]:
    """Stream ``suffixes`` (all when None) of ``src`` into ``dst``; returns the
    receiver's ``{"files", "rejected", "complete"}``."""
    query = "?suffixes=" + "-".join(suffixes) if suffixes else ""
    async with http.stream("SUFFIXES", src.host, src.port, src.path() + query, timeout=timeout) as resp:
        if resp.status != 200:
            body = b"".join([c async for c in resp.iter_body()])
            _check(resp.status, body)
        r = await http.request("MERGE", dst.host, dst.port, dst.path(), body=resp.iter_body(), timeout=timeout)
    _check(r.status, r.body)
    result: dict[str, Any] = json.loads(r.body)
    return result


async def list_objects(http: HTTPClient, ep: Endpoint, timeout: float = 60) -> list[dict[str, Any]]:
    r = await http.request("OBJECTS", ep.host, ep.port, ep.path(), timeout=timeout)
    _check(r.status, r.body)
    out: list[dict[str, Any]] = json.loads(r.body)
    return out


async def list_partitions(http: HTTPClient, host: str, port: int, drive: str, timeout: float = 60) -> list[int]:
    r = await http.request("PARTITIONS", host, port, quote_path(f"/{drive}"), timeout=timeout)
    _check(r.status, r.body)
    out: list[int] = json.loads(r.body)
    return out


async def drop_partition(http: HTTPClient, ep: Endpoint, confirmed: dict[str, str], timeout: float = 60) -> bool:
    """``DROP``: True when the partition was deleted; False (nothing deleted)
    when its hashes no longer equal ``confirmed``."""
    r = await http.request("DROP", ep.host, ep.port, ep.path(), body=json.dumps(confirmed).encode(),
                           headers={"Content-Type": "application/json"}, timeout=timeout)
    if r.status == 409:
        return False
    _check(r.status, r.body)
    return True
