"""The builder's plan: topology arrays and per-tier replica targets.

Private helper of :mod:`ring.builder`. Everything here is a pure function of
the inventory (weights, failure domains), the replica count, the partition
count and the overload; nothing depends on the current assignment.

Tiers are region > zone > host > drive (levels 0..3). Drives are put in a
dense order sorted by (region, zone, host, id) so that the children of every
tier are a contiguous index range (CSR by construction), which is what the
placement kernel walks.

The targets follow Swift's replica plan (``_build_weighted_replicas_by_tier``,
``_build_wanted_replicas_by_tier``, ``_build_target_replicas_by_tier``):

- *weighted* replicanths: a drive's share of the replicas by weight, capped
  at one replica of each partition per drive;
- *wanted* replicanths: as dispersed as the topology allows (each tier holds
  at most ceil(parent / children) replicas), respecting weights inside that;
- *target* = weighted moved towards wanted by ``overload`` (0: weights rule;
  large: dispersion rules). Invariant 8: a tier's per-partition cap
  (``cap``) is ceil(target), so replicas never pile into one failure domain
  while the plan gives another room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ring.inventory import Inventory

LEVELS = ("region", "zone", "host", "drive")
_EPS = 1e-10


class RingValidationError(ValueError):
    """The ring or the requested plan breaks a builder rule."""

    status = 400


@dataclass(frozen=True, slots=True)
class Topology:
    """Dense tier arrays for the drives of an inventory.

    ``tier[L]`` maps dense drive index -> tier index at level L (tier[3] is the
    identity); ``parent[L]`` maps a level-L tier to its level L-1 tier;
    ``start[L]`` (length n[L]+1) gives each level-L tier's children range in
    level L+1 (L = 0..2); regions are the root's children.
    """

    dev_ids: np.ndarray  # int64 [D] dense index -> drive id
    weights: np.ndarray  # float64 [D]
    active: np.ndarray  # bool [D] weight > 0
    tier: tuple[np.ndarray, ...]  # 4 x int32 [D]
    parent: tuple[np.ndarray, ...]  # (None-like empty, zone->region, host->zone, dev->host)
    start: tuple[np.ndarray, ...]  # 3 x int32 [n+1]
    sizes: tuple[int, int, int, int]
    id2dense: np.ndarray  # int32 [max_id + 2]; last slot -1 (for id -1)
    nactive: tuple[np.ndarray, ...]  # 4 x int32: active drives per tier

    def dense(self, ids: np.ndarray) -> np.ndarray:
        """Map drive ids (-1 = none) to dense indices; unknown/removed ids -> -1."""
        lut = self.id2dense
        idx = np.where((ids < 0) | (ids >= len(lut) - 1), len(lut) - 1, ids)
        return lut[idx]


def topology(inventory: Inventory, extra_ids: int = 0) -> Topology:
    """Build the dense topology; ``extra_ids`` widens ``id2dense`` for ring ids."""
    rows = []
    for d in inventory.drives.values():
        h = inventory.hosts[d.host]
        rows.append((h.region, h.zone, h.name, d.id, d.weight))
    rows.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
    ndev = len(rows)
    dev_ids = np.array([r[3] for r in rows], dtype=np.int64)
    weights = np.array([r[4] for r in rows], dtype=np.float64)
    keys: list[list[tuple[Any, ...]]] = [
        [(r[0],) for r in rows],
        [(r[0], r[1]) for r in rows],
        [(r[0], r[1], r[2]) for r in rows],
    ]
    tier: list[np.ndarray] = []
    names: list[list[tuple[Any, ...]]] = []
    for level in range(3):
        uniq: dict[tuple[Any, ...], int] = {}
        idx = np.empty(ndev, dtype=np.int32)
        for i, k in enumerate(keys[level]):
            idx[i] = uniq.setdefault(k, len(uniq))
        tier.append(idx)
        names.append(list(uniq))
    tier.append(np.arange(ndev, dtype=np.int32))
    sizes = (len(names[0]), len(names[1]), len(names[2]), ndev)
    parent: list[np.ndarray] = [np.zeros(sizes[0], dtype=np.int32)]
    for level in range(1, 4):
        par = np.zeros(sizes[level], dtype=np.int32)
        par[tier[level]] = tier[level - 1]
        parent.append(par)
    start = []
    for level in range(3):
        counts = np.bincount(parent[level + 1], minlength=sizes[level])
        start.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    active = weights > 0
    nactive = tuple(
        np.bincount(tier[level], weights=active, minlength=sizes[level]).astype(np.int32)
        for level in range(4)
    )
    max_id = max([inventory.next_drive_id - 1, extra_ids - 1, 0])
    id2dense = np.full(max_id + 2, -1, dtype=np.int32)
    id2dense[dev_ids] = np.arange(ndev, dtype=np.int32)
    return Topology(
        dev_ids, weights, active, tuple(tier), tuple(parent), tuple(start), sizes, id2dense, nactive
    )


def _tier_sums(topo: Topology, per_dev: np.ndarray) -> list[np.ndarray]:
    return [
        np.bincount(topo.tier[level], weights=per_dev, minlength=topo.sizes[level])
        for level in range(4)
    ]


def weighted_replicas(topo: Topology, replicas: int) -> list[np.ndarray]:
    """Per-tier replicanths by weight alone (a drive holds at most 1 replica)."""
    w = np.where(topo.active, topo.weights, 0.0)
    total = w.sum()
    if total <= 0:
        raise RingValidationError("there are no drives with weight > 0")
    wr = w * replicas / total
    room = topo.active & (wr < 1)
    wr = np.minimum(wr, 1.0)
    for _ in range(10_000):
        remaining = replicas - wr.sum()
        if remaining < _EPS:
            break
        room &= wr < 1
        if not room.any():
            break  # fewer drives than replicas: wanted_replicas() reports it
        rel = remaining / wr[room].sum()
        wr[room] = np.minimum(1.0, wr[room] * (rel + 1))
    return _tier_sums(topo, wr)


def max_replicas(topo: Topology, replicas: int, bound: str) -> list[np.ndarray]:
    """Topology-only cap per tier (Swift's ``_build_max_replicas_by_tier``).

    ``bound`` is "ceil" (dispersion report) or "float" (wanted replicas).
    Tiers without active drives get 0.
    """
    out: list[np.ndarray] = []
    act_children = [np.bincount(topo.parent[level][topo.nactive[level] > 0],
                                minlength=topo.sizes[level - 1]) if level else np.zeros(0)
                     for level in range(4)]
    n_regions = int((topo.nactive[0] > 0).sum())
    prev: np.ndarray = np.zeros(0)
    for level in range(4):
        if level == 0:
            m = np.full(topo.sizes[0], replicas / max(n_regions, 1), dtype=np.float64)
        else:
            par = topo.parent[level]
            m = prev[par] / np.maximum(act_children[level][par], 1)
        if bound == "ceil":
            m = np.ceil(m - _EPS)
        if level == 3:
            m = np.minimum(m, 1.0)
        m = np.where(topo.nactive[level] > 0, m, 0.0)
        out.append(m)
        prev = m
    return out


def _spread(replicanths: float, weighted: np.ndarray, dmin: np.ndarray, dmax: np.ndarray,
            ndev: np.ndarray) -> np.ndarray:
    """Split a parent's replicanths among its children (Swift ``place_replicas``)."""
    to_place = np.zeros(len(weighted))
    remaining = replicanths
    spread = np.ones(len(weighted), dtype=bool)
    device_limited = False
    for _ in range(1000):
        if not spread.any():
            break
        wsum = weighted[spread].sum()
        if wsum <= 0:
            break
        rel = remaining / wsum
        reps = to_place[spread] + weighted[spread] * rel
        lo, hi = dmin[spread], dmax[spread]
        reps = np.where(reps < lo, lo, np.where((reps > hi) & (not device_limited), hi, reps))
        to_place[spread] = np.minimum(reps, ndev[spread])
        remaining = replicanths - to_place.sum()
        if remaining < -_EPS:
            spread = to_place > dmin
        elif remaining > _EPS:
            spread = (ndev > to_place) & (to_place < dmax)
            if not spread.any():
                device_limited = True
                spread = to_place < ndev
        else:
            break
    return to_place


def wanted_replicas(topo: Topology, replicas: int, weighted: list[np.ndarray]) -> list[np.ndarray]:
    """Per-tier replicanths for maximal dispersion (Swift's wanted replicas)."""
    dispersed = max_replicas(topo, replicas, "float")
    dmin = [np.floor(d) for d in dispersed]
    dmax = [np.ceil(d) for d in dispersed]
    nact = [n.astype(np.float64) for n in topo.nactive]
    if replicas > nact[0].sum():
        raise RingValidationError(
            f"{replicas} replicas need at least {replicas} drives with weight > 0, "
            f"there are {int(nact[0].sum())}")
    out = [np.zeros(topo.sizes[level]) for level in range(4)]
    act = [topo.nactive[level] > 0 for level in range(4)]
    regions = np.flatnonzero(act[0])
    out[0][regions] = _spread(float(replicas), weighted[0][regions], dmin[0][regions],
                              dmax[0][regions], nact[0][regions])
    for level in range(1, 4):
        starts = topo.start[level - 1]
        for p in np.flatnonzero(out[level - 1] > 0):
            lo, hi = int(starts[p]), int(starts[p + 1])
            kids = lo + np.flatnonzero(act[level][lo:hi])
            want = float(out[level - 1][p])
            if want > nact[level - 1][p] + _EPS:
                raise RingValidationError(f"more replicanths ({want}) than drives in a tier")
            out[level][kids] = _spread(want, weighted[level][kids], dmin[level][kids],
                                       dmax[level][kids], nact[level][kids])
    return out


@dataclass(frozen=True, slots=True)
class Plan:
    """What the placement aims at: per-tier targets and caps, per-drive parts."""

    target: tuple[np.ndarray, ...]  # 4 x float64 replicanths per tier
    cap: tuple[np.ndarray, ...]  # 4 x int32 max replicas of one partition per tier
    dev_parts: np.ndarray  # int64 [D] partition-replicas each drive should hold
    overload_required: float


def _apportion(total: int, desired: np.ndarray) -> np.ndarray:
    """Integers summing to ``total`` proportional to ``desired`` (largest remainder)."""
    s = desired.sum()
    if s <= 0 or total <= 0:
        return np.zeros(len(desired), dtype=np.int64)
    d = desired * (total / s)
    f = np.floor(d).astype(np.int64)
    left = total - int(f.sum())
    if left > 0:
        order = np.lexsort((np.arange(len(d)), -(d - f)))
        f[order[:left]] += 1
    elif left < 0:
        order = np.lexsort((np.arange(len(d)), d - f))
        take = order[f[order] > 0][: -left]
        f[take] -= 1
    out: np.ndarray = f
    return out


def _round_sticky(total: int, desired: np.ndarray, current: np.ndarray,
                  exact: np.ndarray | None = None, bound: float = 0.0) -> np.ndarray | None:
    """Like :func:`_apportion`, but the ceils go first to children already holding more.

    With ``exact`` given, each child's error ``|t - exact| / exact`` must stay
    within ``bound`` (children with ``exact == 0`` get the floor). Returns
    None when that is impossible.
    """
    s = desired.sum()
    if s <= 0 or total <= 0:
        return np.zeros(len(desired), dtype=np.int64)
    d = desired * (total / s)
    f = np.floor(d).astype(np.int64)
    left = total - int(f.sum())
    if left <= 0:
        return _apportion(total, desired)
    n = len(d)
    must_ceil = np.zeros(n, dtype=bool)
    must_floor = np.zeros(n, dtype=bool)
    if exact is not None:
        live = exact > 0
        safe = np.where(live, exact, 1.0)
        must_ceil = live & (np.abs(f - exact) / safe > bound)
        must_floor = ~live | (np.abs(f + 1 - exact) / safe > bound)
    free = ~must_ceil & ~must_floor
    k = left - int(must_ceil.sum())
    if k < 0 or k > int(free.sum()) or (must_ceil & must_floor).any():
        return None
    sticky = current > f
    idx = np.flatnonzero(free)
    order = idx[np.lexsort((idx, -(d - f)[idx], ~sticky[idx]))]
    t: np.ndarray = f.copy()
    t[must_ceil] += 1
    t[order[:k]] += 1
    return t


def _top_down(topo: Topology, target: list[np.ndarray], parts: int, replicas: int,
              current: np.ndarray | None, bound: float, sticky_from: int = 0) -> np.ndarray | None:
    """Integer partition-replicas per drive, apportioned tier by tier from the root.

    Without ``current``: largest remainder at every level. With it: sticky
    rounding from level ``sticky_from`` down, drive errors kept within
    ``bound`` (None if that fails somewhere).
    """
    counts = np.array([replicas * parts], dtype=np.int64)
    cur = None
    if current is not None:
        cur = [np.bincount(topo.tier[level], weights=current, minlength=topo.sizes[level])
               for level in range(4)]
    for level in range(4):
        desired = target[level] * parts
        starts = topo.start[level - 1] if level else np.array([0, topo.sizes[0]])
        out = np.zeros(topo.sizes[level], dtype=np.int64)
        for p in np.flatnonzero(counts > 0) if level else [0]:
            lo, hi = int(starts[p]), int(starts[p + 1])
            if cur is None or level < sticky_from:
                out[lo:hi] = _apportion(int(counts[p]), desired[lo:hi])
                continue
            exact = desired[lo:hi] if level == 3 else None
            t = _round_sticky(int(counts[p]), desired[lo:hi], cur[level][lo:hi], exact, bound)
            if t is None:
                return None
            out[lo:hi] = t
        counts = out
    return counts


def _worst_error(topo: Topology, counts: np.ndarray, exact: np.ndarray) -> float:
    live = topo.active & (exact > 0)
    if not live.any():
        return 0.0
    return float((np.abs(counts[live] - exact[live]) / exact[live]).max())


def make_plan(topo: Topology, replicas: int, parts: int, overload: float,
              current: np.ndarray | None = None) -> Plan:
    """The plan for an inventory; ``current`` (partition-replicas per dense drive) makes
    the rounding of drive targets prefer drives that already hold more."""
    weighted = weighted_replicas(topo, replicas)
    wanted = wanted_replicas(topo, replicas, weighted)
    act = topo.active
    required = 0.0
    if act.any():
        ratio = (wanted[3][act] - weighted[3][act]) / weighted[3][act]
        required = max(0.0, float(ratio.max()))
    if required <= 0.0:
        target = wanted
    else:
        eff = min(max(overload, 0.0), required)
        target = [w + (wa - w) * (eff / required) for w, wa in zip(weighted, wanted, strict=True)]
    cap = tuple(np.ceil(t - _EPS).astype(np.int32) for t in target)
    # integer partition-replicas per drive, apportioned top-down so that every
    # tier's total is as close as possible to its target; with the current
    # assignment known, round in favour of what is already in place as long
    # as no drive ends up further from its share than plain rounding allows
    counts = _top_down(topo, target, parts, replicas, None, 0.0)
    assert counts is not None
    if current is not None and current.any():
        bound = _worst_error(topo, counts, target[3] * parts) * (1 + 1e-9) + 1e-12
        plain_moves = int(np.maximum(current - counts, 0).sum())
        for sticky_from in (0, 3):  # every tier, else drives within hosts only
            sticky = _top_down(topo, target, parts, replicas, current, bound, sticky_from)
            # Sticky rounding is greedy per tier: keep it only when it really
            # leaves more in place than plain rounding (invariant 8).
            if (
                sticky is not None
                and _worst_error(topo, sticky, target[3] * parts) <= bound
                and int(np.maximum(current - sticky, 0).sum()) <= plain_moves
            ):
                counts = sticky
                break
    return Plan(tuple(target), cap, counts, required)
