"""The Nova-like scheduler's decisions (sans-I/O: no store, no clock, no disk).

Hosts of the shared inventory are resource providers (VCPU, MEMORY_MB,
DISK_GB) with their region and zone as aggregates and traits. A request for
``count`` instances is placed one instance at a time over the hosts that
Placement's candidate search says can hold it:

Filters (hard): the host is up and enabled; in the availability zone;
``anti-affinity``: no member of the server group on it; ``affinity``: on the
host of the group's members (any host for the first one); the free amounts
after earlier instances of the same request still fit.

Weighers (soft, Nova's normalised sum, ``_cand_kernels.weigh``): free RAM,
free VCPU, free disk (spread), ``soft-affinity`` (more members on the host is
better), ``soft-anti-affinity`` (fewer), spread across the ring's failure
domains (fewer members of the group or request in the host's zone and
region), and data locality (a host holding a replica of a hinted object,
then a host in the zone of one). Ties go to the host created first.

Every placement then goes to the store as one atomic claim (invariant 7);
the shell retries on a conflict with fresh state.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._cand_kernels import weigh

NAMESPACE = uuidlib.UUID("5b6a4e0e-8c55-4b8f-9d7e-6c2a1f0e9a11")
POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")
CLASSES = (("VCPU", "vcpus"), ("MEMORY_MB", "memory_mb"), ("DISK_GB", "disk_gb"))
# multipliers: ram, cpu, disk, soft-affinity, soft-anti-affinity, spread, locality
MULTIPLIERS = np.array([1.0, 1.0, 1.0, 10.0, 10.0, 5.0, 20.0])


def host_provider_uuid(name: str) -> str:
    return str(uuidlib.uuid5(NAMESPACE, "host:" + name))


def region_aggregate(region: int) -> str:
    return str(uuidlib.uuid5(NAMESPACE, f"region:{region}"))


def zone_aggregate(region: int, zone: int) -> str:
    return str(uuidlib.uuid5(NAMESPACE, f"zone:{region}:{zone}"))


def host_traits(region: int, zone: int) -> list[str]:
    return [f"CUSTOM_REGION_R{region}", f"CUSTOM_ZONE_Z{zone}"]


def parse_zone(text: str) -> tuple[int | None, int]:
    """``"r1z2"`` -> (1, 2); ``"z2"`` or ``"2"`` -> (None, 2)."""
    t = text.strip().lower()
    region = None
    if t.startswith("r") and "z" in t:
        r, _, t = t[1:].partition("z")
        region = int(r)
    elif t.startswith("z"):
        t = t[1:]
    return region, int(t)


@dataclass(frozen=True, slots=True)
class HostSpec:
    """A host as the inventory declares it (``ring.inventory.Host``'s fields)."""

    name: str
    region: int
    zone: int
    address: str = ""
    port: int = 0
    vcpus: int | None = None
    memory_mb: int | None = None
    disk_gb: int | None = None

    def inventories(self) -> dict[str, int]:
        return {rc: int(getattr(self, attr)) for rc, attr in CLASSES
                if getattr(self, attr)}


@dataclass(frozen=True, slots=True)
class Candidate:
    """A host that can take one more instance, with what is free on it."""

    host: str
    region: int
    zone: int
    free: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Placement:
    instance: str
    host: str


@dataclass(slots=True)
class GroupState:
    name: str
    policy: str
    members: dict[str, str] = field(default_factory=dict)  # instance -> host


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    instances: Sequence[str]
    resources: Mapping[str, int]
    group: GroupState | None = None
    replica_hosts: frozenset[str] = frozenset()
    replica_zones: frozenset[tuple[int, int]] = frozenset()


class NoValidHost(Exception):
    status = 409


def place(req: PlaceRequest, candidates: Sequence[Candidate]) -> list[Placement]:
    """Choose a host per instance; raise ``NoValidHost`` when one cannot go anywhere."""
    free = {c.host: dict(c.free) for c in candidates}
    info = {c.host: c for c in candidates}
    members: dict[str, str] = dict(req.group.members) if req.group else {}
    policy = req.group.policy if req.group else None
    out: list[Placement] = []
    for inst in req.instances:
        hosts = [c.host for c in candidates
                 if all(free[c.host].get(rc, 0) >= n for rc, n in req.resources.items())]
        used_hosts = set(members.values())
        if policy == "anti-affinity":
            hosts = [h for h in hosts if h not in used_hosts]
        elif policy == "affinity" and used_hosts:
            hosts = [h for h in hosts if h in used_hosts]
        if not hosts:
            raise NoValidHost(f"No valid host was found for instance {inst}: "
                              f"{len(candidates)} candidate host(s), none passed the filters")
        best = hosts[int(np.argmax(_weights(hosts, free, info, members, req)))]
        out.append(Placement(inst, best))
        members[inst] = best
        for rc, n in req.resources.items():
            free[best][rc] = free[best].get(rc, 0) - n
    return out


def _weights(hosts: list[str], free: Mapping[str, Mapping[str, int]],
             info: Mapping[str, Candidate], members: Mapping[str, str],
             req: PlaceRequest) -> np.ndarray:
    per_host: dict[str, int] = {}
    per_zone: dict[tuple[int, int], int] = {}
    per_region: dict[int, int] = {}
    for h in members.values():
        per_host[h] = per_host.get(h, 0) + 1
        c = info.get(h)
        if c is not None:
            per_zone[(c.region, c.zone)] = per_zone.get((c.region, c.zone), 0) + 1
            per_region[c.region] = per_region.get(c.region, 0) + 1
    policy = req.group.policy if req.group else None
    values = np.zeros((len(hosts), len(MULTIPLIERS)), dtype=np.float64)
    for i, h in enumerate(hosts):
        c = info[h]
        values[i, 0] = free[h].get("MEMORY_MB", 0)
        values[i, 1] = free[h].get("VCPU", 0)
        values[i, 2] = free[h].get("DISK_GB", 0)
        if policy == "soft-affinity":
            values[i, 3] = per_host.get(h, 0)
        if policy == "soft-anti-affinity":
            values[i, 4] = -per_host.get(h, 0)
        values[i, 5] = -(per_zone.get((c.region, c.zone), 0) * 4 + per_region.get(c.region, 0)
                         + per_host.get(h, 0) * 16)
        if h in req.replica_hosts:
            values[i, 6] = 2
        elif (c.region, c.zone) in req.replica_zones:
            values[i, 6] = 1
    return weigh(values, MULTIPLIERS)  # type: ignore[no-any-return]


def down_hosts(last_seen: Mapping[str, float], now: float, interval: float) -> list[str]:
    """Hosts whose last heartbeat is older than ``interval`` (sorted)."""
    return sorted(h for h, t in last_seen.items() if now - t > interval)


def diff_hosts(current: Iterable[str], wanted: Iterable[HostSpec]) -> tuple[list[str], list[str]]:
    """(names to add or update, names to remove)."""
    cur = set(current)
    want = {h.name for h in wanted}
    return sorted(want), sorted(cur - want)
