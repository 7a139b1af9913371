"""``dev up``'s link to the placement service: register the inventory's hosts
(``POST /scheduler/hosts`` with the builder file, so the scheduler places
VMs on the same hosts the ring places objects on) and send each live storage
node's heartbeat, so a killed node shows up as a down host.

Best effort: a placement service that does not answer is reported by the
caller and never stops the object store.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

HEADERS = {
    "x-auth-token": "admin",
    "openstack-api-version": "placement latest",
    "content-type": "application/json",
    "accept": "application/json",
}


def _call(url: str, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method, headers=HEADERS)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def sync_hosts(url: str, builder: str, ring: str, hash_secret: str) -> str | None:
    """Register the builder's hosts; None on success, else why not."""
    try:
        _call(url, "POST", "/scheduler/hosts", {"builder": builder, "ring": ring, "hash_secret": hash_secret},
              timeout=30)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        detail = exc.read().decode(errors="replace")[:200] if isinstance(exc, urllib.error.HTTPError) else exc
        return f"placement host sync failed: {detail}"
    return None


def heartbeat(url: str, hosts: list[str]) -> None:
    for host in hosts:
        try:
            _call(url, "POST", f"/scheduler/hosts/{host}/heartbeat", timeout=2)
        except (urllib.error.URLError, OSError, ValueError):
            pass


DEMO_REQUEST = {
    "name": "demo", "resources": {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1},
    "server_group": {"name": "demo", "policy": "soft-anti-affinity"},
}


def schedule_demo(url: str, count: int) -> tuple[list[dict[str, Any]], str | None]:
    """Place ``count`` demo instances (``demo-1`` ...; server group ``demo``,
    soft anti-affinity) so a new cluster shows the scheduler at work; a data
    directory that already has them keeps them. Returns the demo instances
    and, when placement refused, why."""
    try:
        have = [i for i in _call(url, "GET", "/scheduler/instances")["instances"]
                if str(i.get("name", "")).startswith("demo-")]
        if have or count <= 0:
            return have, None
        made = _call(url, "POST", "/scheduler/instances", {**DEMO_REQUEST, "count": count}, timeout=30)
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        detail = exc.read().decode(errors="replace")[:200] if isinstance(exc, urllib.error.HTTPError) else exc
        return [], f"demo instances not scheduled: {detail}"
    return list(made["instances"]), None
