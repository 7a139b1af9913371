"""Gathering replicas to move, and the ring's balance/dispersion figures.

Private helper of :mod:`ring.builder`; pure numpy over the dense assignment
``A`` (int32 [replicas][partitions] of dense drive indices, -1 = unassigned).

Movement rules (invariant 8, as Swift):

- replicas on removed drives always move (they have no home);
- otherwise a partition moves at most one replica per rebalance, and only if
  it did not move within ``min_part_hours`` ("eligible");
- a replica already in flight in this rebalance (its drive differs from the
  one it started on) may be re-placed freely: that costs no extra movement;
- a second replica on one drive is always moved, whatever the clock says.
"""

from __future__ import annotations

import numpy as np

from ring import _builder_kernels
from ring._builder_plan import Topology

MAX_BALANCE = 999.99


def _with_none(arr: np.ndarray) -> np.ndarray:
    """``arr`` with a trailing -1 so that indexing with -1 yields -1."""
    return np.append(arr, -1).astype(np.int32)


def _same_counts(T: np.ndarray) -> np.ndarray:
    """For each slot, how many replicas of its partition share its tier (-1 slots: 0)."""
    valid = T >= 0
    out = np.zeros(T.shape, dtype=np.int32)
    for r in range(T.shape[0]):
        for q in range(T.shape[0]):
            out[r] += (T[q] == T[r]) & valid[q]
    return np.where(valid, out, 0)


def _first_of_tier(T: np.ndarray) -> np.ndarray:
    """True for the first slot of each distinct tier within a partition."""
    first = np.ones(T.shape, dtype=bool)
    for r in range(1, T.shape[0]):
        for q in range(r):
            first[r] &= T[q] != T[r]
    return first


def _tier_excess(A: np.ndarray, topo: Topology, limits: tuple[np.ndarray, ...] | list[np.ndarray]
                 ) -> np.ndarray:
    lims = [np.ascontiguousarray(np.rint(lim), dtype=np.int32) for lim in limits]
    out: np.ndarray = _builder_kernels.tier_excess(
        np.ascontiguousarray(A, dtype=np.int32), topo.parent[3].astype(np.int32),
        topo.parent[2].astype(np.int32), topo.parent[1].astype(np.int32), *lims)
    return out


def undispersed(A: np.ndarray, topo: Topology, caps: tuple[np.ndarray, ...]) -> np.ndarray:
    """Partitions with some tier holding more of their replicas than its cap."""
    return _tier_excess(A, topo, caps) > 0


def constraint_score(sub: np.ndarray, topo: Topology, caps: tuple[np.ndarray, ...]) -> np.ndarray:
    """Per partition, how many region/zone/host tiers its replicas already fill to the cap.

    Placing the most constrained partitions first leaves the flexible ones to
    fill whatever room remains, which keeps later balance moves (and thus
    movement) down.
    """
    score = np.zeros(sub.shape[1], dtype=np.int32)
    for level in range(3):
        T = _with_none(topo.tier[level])[sub]
        capx = np.append(caps[level], 0)
        full = (T >= 0) & (_same_counts(T) >= capx[T]) & _first_of_tier(T)
        score += full.sum(axis=0, dtype=np.int32)
    return score


def gather_for_balance(A: np.ndarray, excess: np.ndarray, inflight: np.ndarray,
                       can_move: np.ndarray, rng: np.random.Generator) -> int:
    """Unassign replicas from drives holding more than their target (Swift's "forced").

    Takes at most ``excess[d]`` replicas from each drive ``d``, at most one
    not-in-flight replica per partition, in-flight ones first, then
    partitions at random (seeded). Updates ``excess`` and ``can_move`` in
    place; returns the count.
    """
    gathered = 0
    R, N = A.shape
    exx = np.append(excess, 0)
    for _ in range(4):
        if not (exx[:-1] > 0).any():
            break
        ok = (exx[A] > 0) & (inflight | can_move[None, :].astype(bool))
        has = ok.any(axis=0)
        parts = np.flatnonzero(has)
        if not len(parts):
            break
        score = np.where(ok[:, parts], exx[A[:, parts]] + rng.random((R, len(parts))), -1.0)
        reps = np.argmax(score, axis=0)
        devs = A[reps, parts]
        # per drive: replicas already in flight first (re-placing them is free), then random
        perm = rng.permutation(len(parts))
        fresh = ~inflight[reps, parts]
        order = perm[np.lexsort((fresh[perm], devs[perm]))]
        sdev = devs[order]
        first = np.searchsorted(sdev, sdev, side="left")
        rank = np.arange(len(sdev)) - first
        sel = order[rank < exx[sdev]]
        if not len(sel):
            break
        p_sel, r_sel, d_sel = parts[sel], reps[sel], devs[sel]
        A[r_sel, p_sel] = -1
        np.subtract.at(exx, d_sel, 1)
        can_move[p_sel[~inflight[r_sel, p_sel]]] = False
        gathered += len(sel)
    excess[:] = exx[:-1]
    return gathered


def balance_of(counts: np.ndarray, weights: np.ndarray, parts_total: int) -> float:
    """Swift's ``get_balance``: max over drives of |parts/wanted - 1| in percent.

    ``wanted`` is by weight alone. A weightless drive holding parts scores
    MAX_BALANCE.
    """
    total = weights.sum()
    if total <= 0:
        return MAX_BALANCE if counts.sum() else 0.0
    wop = parts_total / total
    worst = 0.0
    zero = weights <= 0
    if (counts[zero] > 0).any():
        return MAX_BALANCE
    live = ~zero
    if live.any():
        dev = np.abs(100.0 * counts[live] / (weights[live] * wop) - 100.0)
        worst = float(dev.max())
    return min(worst, MAX_BALANCE)


def dispersion_of(A: np.ndarray, topo: Topology, max_allowed: list[np.ndarray]) -> float:
    """Swift's dispersion: percent of partition-replicas beyond the tiers' maximal spread.

    Each partition counts, at the tier level where it is worst, the replicas
    above ``max_allowed`` (the topology-only maximum); unassigned or removed
    replicas count as at risk.
    """
    R, N = A.shape
    if N == 0:
        return 0.0
    risk = np.maximum(_tier_excess(A, topo, max_allowed), (A < 0).sum(axis=0))
    return float(100.0 * float(risk.sum(dtype=np.int64)) / (int(N) * int(R)))
