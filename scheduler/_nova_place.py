"""Scheduler inputs from the store and the ring (shell helpers for ``nova``).

``candidates_for``: Placement's own candidate search (``find_candidates`` on
the cached provider arrays) for one instance's resources and traits, limited
to the availability zone's aggregate, then narrowed to scheduler hosts that
are up and enabled, with their free amounts.

``locality_of``: the hosts holding a replica of each hinted object (the
object ring's primaries for ``account/container/object``) and their zones.
"""

from __future__ import annotations

from typing import Any

from ._nova_core import (
    Candidate,
    host_provider_uuid,
    parse_zone,
    region_aggregate,
    zone_aggregate,
)
from ._store_records import PlacementError
from .candidates import CandidateQuery, RequestGroup, find_candidates
from .candidates_api import arrays_for


def _az_aggregates(hosts: dict[str, Any], az: str) -> frozenset[str]:
    try:
        region, zone = parse_zone(az)
    except ValueError:
        raise PlacementError(400, f"Bad availability zone {az!r}: use r<region>z<zone> "
                             "or z<zone>.") from None
    if region is not None:
        return frozenset({zone_aggregate(region, zone)})
    return frozenset(zone_aggregate(h.spec.region, zone) for h in hosts.values()
                     if h.spec.zone == zone) or frozenset({region_aggregate(-1)})


async def candidates_for(sched: Any, resources: dict[str, int], traits: list[str],
                         az: str | None, exclude: str | None) -> list[Candidate]:
    arrays = await arrays_for(sched.store)
    usable = sched.usable()
    if exclude is not None:
        usable.pop(exclude, None)
    member_of = (_az_aggregates(sched.hosts, az),) if az else ()
    q = CandidateQuery((RequestGroup("", tuple(resources.items()),
                                     tuple(frozenset({t}) for t in traits), frozenset(),
                                     member_of),))
    found = find_candidates(arrays, q)
    if found.flat is not None:
        fitting = found.flat[1].tolist()
    else:  # trees or sharing elsewhere in the store: keep single-provider answers
        fitting = [a.resources[0][0] for a in found.found
                   if len({p for p, _, _ in a.resources}) == 1]
    by_uuid = {arrays.uuids[p]: p for p in fitting}
    out = []
    for name, h in usable.items():
        p = by_uuid.get(host_provider_uuid(name))
        if p is None:
            continue
        free = {rc: int(arrays.cap_int[p, j] - arrays.used[p, j])
                for rc, j in arrays.rc_index.items() if arrays.has_inv[p, j]}
        out.append((p, Candidate(name, h.spec.region, h.spec.zone, free)))
    out.sort(key=lambda x: x[0])
    return [c for _, c in out]


def _split(path: str) -> tuple[str, str | None, str | None]:
    parts = path.strip("/").split("/", 3)
    if parts and parts[0] == "v1":
        parts = parts[1:]
    if not parts or not parts[0]:
        raise PlacementError(400, f"Bad object path {path!r}: use account/container/object.")
    rest = "/".join(parts[2:]) if len(parts) > 2 else None
    return parts[0], parts[1] if len(parts) > 1 else None, rest


async def locality_of(sched: Any, paths: list[str]
                      ) -> tuple[frozenset[str], frozenset[tuple[int, int]]]:
    if not paths:
        return frozenset(), frozenset()
    if not sched.ring_path:
        raise PlacementError(400, "Data locality needs an object ring: sync the scheduler "
                             "with a ring (POST /scheduler/hosts {\"ring\": ...}).")
    from common.config import DEFAULT_HASH_SECRET
    from ring.lookup import Ring

    ring = Ring(sched.ring_path, sched.hash_secret or DEFAULT_HASH_SECRET)
    hosts: set[str] = set()
    zones: set[tuple[int, int]] = set()
    for path in paths:
        _, nodes = ring.get_nodes(*_split(path))
        for d in nodes:
            hosts.add(d.host)
            zones.add((d.region, d.zone))
    return frozenset(hosts), frozenset(zones)

