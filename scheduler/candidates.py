"""Allocation candidates: Placement's search, vectorised (sans-I/O core).

Input: ``ProviderArrays`` (one store version) and a ``CandidateQuery`` (parsed
``GET /allocation_candidates``). Output: ``Candidates`` (allocation requests
and the providers to summarise), rendered per microversion by
``scheduler._cand_render``.

Rules, as OpenStack Placement 16 implements them (objects/allocation_candidate.py
and research_context.py), in the order it applies them:

1. ``root_required`` keeps only anchors (roots) with/without those traits.
2. Each request group is searched alone. A suffixed group (or any group when
   the deployment has neither trees nor sharing providers) needs one provider
   holding all its resources, its traits, member of its aggregates (the
   provider itself), none of its forbidden traits/aggregates. The unsuffixed
   group otherwise may spread over a tree and sharing providers
   (MISC_SHARES_VIA_AGGREGATE, anchored at each root sharing an aggregate):
   member_of holds when the provider *or its anchor root* is a member;
   forbidden traits are checked per provider, required traits on the union.
3. One allocation request per group, same anchor, combined (product);
   ``group_policy=isolate`` wants distinct providers for suffixed groups;
   ``same_subtree`` wants one of the providers to be an ancestor of all;
   the summed amounts must still fit (used + amount <= capacity, <= max_unit).
4. Before 1.29 an allocation request may not use two providers of one tree.
5. ``limit``: the first N in order (or a random sample with ``randomize``);
   we stop generating once N are found (invariant: the N are exactly the
   first N of the full answer), so ``limit=10`` costs a fraction of it.

Order: providers in creation order, grouped by anchor; Placement's own order
is "deterministic but undefined".
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._cand_arrays import ProviderArrays
from ._cand_kernels import resource_fit
from ._store_records import bad_request


@dataclass(frozen=True, slots=True)
class RequestGroup:
    suffix: str
    resources: tuple[tuple[str, int], ...] = ()
    required: tuple[frozenset[str], ...] = ()
    forbidden: frozenset[str] = frozenset()
    member_of: tuple[frozenset[str], ...] = ()
    forbidden_aggs: frozenset[str] = frozenset()
    in_tree: str | None = None

    @property
    def use_same_provider(self) -> bool:
        return bool(self.suffix)


@dataclass(frozen=True, slots=True)
class CandidateQuery:
    groups: tuple[RequestGroup, ...]
    limit: int | None = None
    group_policy: str | None = None
    root_required: frozenset[str] = frozenset()
    root_forbidden: frozenset[str] = frozenset()
    same_subtrees: tuple[frozenset[str], ...] = ()
    nested_aware: bool = True
    randomize: bool = False


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    """``resources``: (provider index, class, amount); ``mappings``: (suffix,
    provider indices). ``anchor`` and ``same_provider`` are internal."""

    anchor: int
    resources: tuple[tuple[int, str, int], ...]
    mappings: tuple[tuple[str, tuple[int, ...]], ...]
    same_provider: bool = False


@dataclass(slots=True)
class Candidates:
    """``flat``: the common case (one group, single providers, no trees or
    sharing) kept as (group, provider indices) so rendering skips objects."""

    found: list[AllocationRequest] = field(default_factory=list)
    summaries: list[int] = field(default_factory=list)
    flat: tuple[RequestGroup, Any] | None = None

    @property
    def requests(self) -> list[AllocationRequest]:
        if self.flat is not None:
            g, idx = self.flat
            return [_areq_for(g, p, p) for p in idx.tolist()]
        return self.found


class _NoResult(Exception):
    """Placement's ResourceProviderNotFound inside the search: empty answer."""


def find_candidates(arr: ProviderArrays, q: CandidateQuery,
                    rng: random.Random | None = None) -> Candidates:
    """The search. Raises ``PlacementError`` (400) for unknown classes/traits."""
    try:
        gen, flat = _search(arr, q)
    except _NoResult:
        return Candidates()
    if isinstance(gen, tuple):  # the flat case: slice indices, build nothing
        g, idx = gen
        if q.randomize:
            rng = rng or random.Random()
            if q.limit and q.limit < len(idx):
                idx = np.array(rng.sample(idx.tolist(), q.limit), dtype=np.int64)
            else:
                idx = np.array(rng.sample(idx.tolist(), len(idx)), dtype=np.int64)
        elif q.limit:
            idx = idx[: q.limit]
        return Candidates([], sorted(idx.tolist()), (g, idx))
    if q.randomize:
        found = list(gen)
        rng = rng or random.Random()
        if q.limit and q.limit < len(found):
            found = rng.sample(found, q.limit)
        else:
            rng.shuffle(found)
    else:
        found = list(itertools.islice(gen, q.limit)) if q.limit else list(gen)
    return Candidates(found, _summaries(arr, found, q, flat))


def _summaries(arr: ProviderArrays, found: list[AllocationRequest], q: CandidateQuery,
               flat: bool) -> list[int]:
    used = sorted({p for a in found for p, _, _ in a.resources})
    if flat or (not q.nested_aware and arr.has_trees):
        return used
    roots = np.zeros(arr.size, dtype=bool)
    roots[arr.root[used]] = True
    return [int(i) for i in np.flatnonzero(roots[arr.root])]


def _check_traits(arr: ProviderArrays, names: Any) -> None:
    for name in names:
        if name not in arr.known_traits:
            raise bad_request(f"No such trait(s): {name}.")


def _search(arr: ProviderArrays, q: CandidateQuery) -> tuple[Any, bool]:
    anchors = None
    if q.root_required or q.root_forbidden:
        _check_traits(arr, sorted(q.root_required | q.root_forbidden))
        anchors = (arr.parent < 0) & arr.trait_mask([{t} for t in q.root_required],
                                                    q.root_forbidden)
        if not anchors.any():
            raise _NoResult
    has_trees = arr.has_trees
    sharing = arr.sharing()
    exists_sharing = bool(sharing.any())
    per_group: dict[str, list[AllocationRequest]] = {}
    flat_idx = None
    for g in q.groups:
        fit, aggs, tree_root = _prepare(arr, g)
        if not g.use_same_provider and (exists_sharing or has_trees):
            per_group[g.suffix] = _multi(arr, g, fit, aggs, anchors, sharing, tree_root)
        else:
            idx = _single_mask(arr, g, fit, aggs)
            if anchors is not None:
                idx = idx[anchors[arr.root[idx]]] if not exists_sharing else idx
            if len(q.groups) == 1 and not exists_sharing and not has_trees:
                flat_idx = idx
                if not len(idx):
                    raise _NoResult
                break
            per_group[g.suffix] = _single_areqs(arr, g, idx, anchors, sharing)
        if not per_group[g.suffix]:
            raise _NoResult
    if flat_idx is not None:
        return (q.groups[0], flat_idx), True
    return _merge(arr, q, per_group, has_trees), False


def _prepare(arr: ProviderArrays, g: RequestGroup) -> tuple[Any, Any, int | None]:
    """Name checks in Placement's order, then the per-class fit matrix."""
    for rc, _ in g.resources:
        if rc not in arr.known_classes:
            raise bad_request(
                f"Invalid resource class in resources parameter: No such resource class {rc}.")
    aggs = None
    if g.member_of:
        aggs = arr.agg_mask(g.member_of, ())
        if not aggs.any():
            raise _NoResult
    for any_traits in g.required:
        _check_traits(arr, sorted(any_traits))
    _check_traits(arr, sorted(g.forbidden))
    tree_root = None
    if g.in_tree is not None:
        if g.in_tree not in arr.index:
            raise _NoResult
        tree_root = int(arr.root[arr.index[g.in_tree]])
    if any(rc not in arr.rc_index for rc, _ in g.resources):
        raise _NoResult
    cols = np.array([arr.rc_index[rc] for rc, _ in g.resources], dtype=np.int64)
    amounts = np.array([a for _, a in g.resources], dtype=np.int64)
    fit = resource_fit(arr.capacity, arr.used, arr.min_unit, arr.max_unit, arr.step,
                       cols, amounts).astype(bool)
    if tree_root is not None:
        fit &= (arr.root == tree_root)[:, None]
    if len(g.resources) and not fit.any(axis=0).all():
        raise _NoResult
    return fit, aggs, tree_root


def _single_mask(arr: ProviderArrays, g: RequestGroup, fit: Any, aggs: Any) -> Any:
    """Providers that alone satisfy the group (get_provider_ids_matching)."""
    pos = None
    if g.required:
        pos = arr.trait_mask(g.required, ())
    if aggs is not None:
        pos = aggs if pos is None else pos & aggs
    bad = np.zeros(arr.size, dtype=bool)
    if g.forbidden_aggs:
        bad |= arr.agg_mask([g.forbidden_aggs], ())
    if g.forbidden:
        bad |= arr.trait_mask([g.forbidden], ())
    if g.resources:
        mask = fit.all(axis=1) & ~bad
        if pos is not None:
            mask &= pos
    elif pos is not None:  # a resourceless group (1.36): filters alone
        mask = pos & ~bad
    else:
        mask = np.zeros(arr.size, dtype=bool)
    return np.flatnonzero(mask)


def _areq_for(g: RequestGroup, p: int, anchor: int) -> AllocationRequest:
    return AllocationRequest(anchor, tuple((p, rc, a) for rc, a in g.resources),
                             ((g.suffix, (p,)),), g.use_same_provider)


def _single_areqs(arr: ProviderArrays, g: RequestGroup, idx: Any, anchors: Any,
                  sharing: Any) -> list[AllocationRequest]:
    out = []
    for p in idx.tolist():
        r = int(arr.root[p])
        if anchors is None or anchors[r]:
            out.append(_areq_for(g, p, r))
        if sharing[p]:
            for a in arr.anchors_of(p):
                if a != r and (anchors is None or anchors[a]):
                    out.append(_areq_for(g, p, a))
    return out


def _multi(arr: ProviderArrays, g: RequestGroup, fit: Any, aggs: Any, anchors: Any,
           sharing: Any, tree_root: int | None) -> list[AllocationRequest]:
    """The unsuffixed group over trees and sharing providers (get_trees_matching_all)."""
    bad_aggs = arr.agg_mask([g.forbidden_aggs], ()) if g.forbidden_aggs else None
    total: set[tuple[int, int, int]] | None = None
    for j in range(len(g.resources)):
        cand = {(p, int(arr.root[p])) for p in np.flatnonzero(fit[:, j]).tolist()}
        shared = sharing & fit[:, j]
        if aggs is not None:
            shared = shared & aggs
        if tree_root is None and shared.any():
            for sp in np.flatnonzero(shared).tolist():
                cand.update((sp, a) for a in arr.anchors_of(sp))
        if anchors is not None:
            cand = {(p, a) for p, a in cand if anchors[a]}
        if aggs is not None:
            cand = {(p, a) for p, a in cand if aggs[p] or aggs[a]}
        if bad_aggs is not None:
            cand = {(p, a) for p, a in cand if not (bad_aggs[p] or bad_aggs[a])}
        if not cand:
            return []
        rows = {(p, a, j) for p, a in cand}
        if total is None:
            total = rows
        else:
            trees = {a for _, a, _ in total} & {a for _, a in cand}
            total = {x for x in total | rows if x[1] in trees}
        if not total:
            return []
    assert total is not None
    forbidden_bad = arr.trait_mask([g.forbidden], ()) if g.forbidden else None
    order = sorted(range(len(g.resources)), key=lambda j: arr.class_key[g.resources[j][0]])
    tree: dict[int, dict[int, list[int]]] = {}
    for p, a, j in sorted(total, key=lambda x: (x[1], x[0])):
        tree.setdefault(a, {}).setdefault(j, []).append(p)
    out = []
    for a in sorted(tree):
        lists = [tree[a][j] for j in order]
        for combo in itertools.product(*lists):
            provs = set(combo)
            if forbidden_bad is not None and any(forbidden_bad[p] for p in provs):
                continue
            if g.required:
                have = set().union(*(arr.traits[p] for p in provs))
                if not all(s & have for s in g.required):
                    continue
            res = tuple((p, g.resources[j][0], g.resources[j][1]) for p, j in zip(combo, order, strict=True))
            out.append(AllocationRequest(a, res, ((g.suffix, tuple(sorted(provs))),), False))
    return out


def _merge(arr: ProviderArrays, q: CandidateQuery, per_group: dict[str, list[AllocationRequest]],
           has_trees: bool) -> Iterator[AllocationRequest]:
    by_anchor: dict[int, dict[str, list[AllocationRequest]]] = {}
    for suffix, areqs in per_group.items():
        for a in areqs:
            by_anchor.setdefault(a.anchor, {}).setdefault(suffix, []).append(a)
    suffixes = set(per_group)
    n_granular = len(suffixes - {""})
    seen: set[Any] = set()
    exclude_nested = not q.nested_aware and has_trees
    for anchor, lists in by_anchor.items():
        if set(lists) != suffixes:
            continue
        for combo in itertools.product(*lists.values()):
            if q.group_policy == "isolate":
                distinct = set().union(*(a.mappings[0][1] for a in combo if a.same_provider))
                if len(distinct) != n_granular:
                    continue
            if q.same_subtrees and not _same_subtree(arr, q, combo):
                continue
            merged = _consolidate(anchor, combo)
            if _exceeds(arr, merged):
                continue
            key = (frozenset(merged.resources), merged.mappings)
            if key in seen:
                continue
            seen.add(key)
            if exclude_nested:
                provs = {p for p, _, _ in merged.resources}
                if len(provs) != len({int(arr.root[p]) for p in provs}):
                    continue
            yield merged


def _consolidate(anchor: int, combo: tuple[AllocationRequest, ...]) -> AllocationRequest:
    amounts: dict[tuple[int, str], int] = {}
    maps: dict[str, set[int]] = {}
    for a in combo:
        for p, rc, n in a.resources:
            amounts[(p, rc)] = amounts.get((p, rc), 0) + n
        for suffix, provs in a.mappings:
            maps.setdefault(suffix, set()).update(provs)
    return AllocationRequest(
        anchor, tuple((p, rc, n) for (p, rc), n in amounts.items()),
        tuple((s, tuple(sorted(v))) for s, v in maps.items()))


def _exceeds(arr: ProviderArrays, a: AllocationRequest) -> bool:
    for p, rc, n in a.resources:
        c = arr.rc_index[rc]
        if arr.used[p, c] + n > arr.cap_int[p, c] or n > arr.max_unit[p, c]:
            return True
    return False


def _ancestors(arr: ProviderArrays, p: int) -> set[int]:
    out = {p}
    while arr.parent[p] >= 0:
        p = int(arr.parent[p])
        out.add(p)
    return out


def _same_subtree(arr: ProviderArrays, q: CandidateQuery,
                  combo: tuple[AllocationRequest, ...]) -> bool:
    for suffixes in q.same_subtrees:
        provs = {p for a in combo for s, ps in a.mappings if s in suffixes for p in ps}
        if len(provs) <= 1:
            continue
        common = set.intersection(*(_ancestors(arr, p) for p in provs))
        if not common & provs:
            return False
    return True
