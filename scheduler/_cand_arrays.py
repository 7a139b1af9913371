"""Provider arrays: the store's snapshot as numpy arrays for the candidates search.

Pure (no I/O): built from a ``scheduler.store.Snapshot`` plus the names of the
custom resource classes and traits, once per store version, then shared by
every request until the next write. Index ``i`` is a provider in creation
order (Placement's internal id order, its natural result order).

Per provider x resource class column (``rc_names``): ``capacity`` as the
float ``(total - reserved) * allocation_ratio`` (-1 without inventory),
``cap_int`` as Placement reports it, ``used``, ``min_unit``, ``max_unit``
(0 without inventory), ``step`` (0 without inventory). Traits and aggregates
are bitsets (``uint64`` words per provider).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import os_resource_classes
import os_traits

SHARING_TRAIT = "MISC_SHARES_VIA_AGGREGATE"
STANDARD_CLASSES: tuple[str, ...] = tuple(os_resource_classes.STANDARDS)
STANDARD_TRAITS: frozenset[str] = frozenset(os_traits.get_traits())
_STD_ORDER = {name: i for i, name in enumerate(STANDARD_CLASSES)}


def class_order(name: str, custom_ids: Mapping[str, int] | None = None) -> tuple[int, str]:
    """Placement sorts by internal class id: standard ones first, in their order."""
    if name in _STD_ORDER:
        return (_STD_ORDER[name], name)
    return (10000 + (custom_ids or {}).get(name, 0), name)


@dataclass(slots=True)
class ProviderArrays:
    version: int
    uuids: list[str]
    index: dict[str, int]
    parent: npt.NDArray[np.int64]
    root: npt.NDArray[np.int64]
    rc_names: list[str]
    rc_index: dict[str, int]
    capacity: npt.NDArray[np.float64]
    cap_int: npt.NDArray[np.int64]
    used: npt.NDArray[np.int64]
    min_unit: npt.NDArray[np.int64]
    max_unit: npt.NDArray[np.int64]
    step: npt.NDArray[np.int64]
    has_inv: npt.NDArray[np.bool_]
    trait_index: dict[str, int]
    trait_bits: npt.NDArray[np.uint64]
    agg_index: dict[str, int]
    agg_bits: npt.NDArray[np.uint64]
    traits: list[tuple[str, ...]]
    known_classes: frozenset[str]
    known_traits: frozenset[str]
    class_key: dict[str, tuple[int, str]]
    fingerprint: int = 0  # of the rows it was built from, but usages (_cand_cache)
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.uuids)

    @property
    def has_trees(self) -> bool:
        return bool((self.parent >= 0).any())

    def sharing(self) -> Any:
        """Providers with MISC_SHARES_VIA_AGGREGATE (bool array)."""
        return self.trait_mask([{SHARING_TRAIT}], ())

    def trait_mask(self, any_sets: Iterable[Iterable[str]], forbidden: Iterable[str]) -> Any:
        from ._cand_kernels import bits_match
        return bits_match(self.trait_bits, *_masks(self.trait_index, self.trait_bits.shape[1],
                                                   any_sets, forbidden)).astype(bool)

    def agg_mask(self, any_sets: Iterable[Iterable[str]], forbidden: Iterable[str]) -> Any:
        from ._cand_kernels import bits_match
        return bits_match(self.agg_bits, *_masks(self.agg_index, self.agg_bits.shape[1],
                                                 any_sets, forbidden)).astype(bool)

    def anchors_of(self, p: int) -> list[int]:
        """Roots of every provider sharing an aggregate with ``p`` (Placement's
        ``anchors_for_sharing_providers``), in index order."""
        row = self.agg_bits[p]
        if not row.any():
            return []
        hit = (self.agg_bits & row).any(axis=1)
        return sorted({int(r) for r in self.root[hit]})


def _masks(index: Mapping[str, int], words: int, any_sets: Iterable[Iterable[str]],
           forbidden: Iterable[str]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    sets = [list(s) for s in any_sets]
    anym = np.zeros((len(sets), words), dtype=np.uint64)
    for k, names in enumerate(sets):
        for name in names:
            b = index.get(name)
            if b is not None:
                anym[k, b // 64] |= np.uint64(1 << (b % 64))
    forb = np.zeros(words, dtype=np.uint64)
    for name in forbidden:
        b = index.get(name)
        if b is not None:
            forb[b // 64] |= np.uint64(1 << (b % 64))
    return anym, forb


def _bits(rows: list[Iterable[str]], index: dict[str, int]) -> npt.NDArray[np.uint64]:
    words = max(1, (len(index) + 63) // 64)
    out = np.zeros((len(rows), words), dtype=np.uint64)
    for i, names in enumerate(rows):
        for name in names:
            b = index[name]
            out[i, b // 64] |= np.uint64(1 << (b % 64))
    return out


def build_arrays(version: int, providers: Mapping[str, Any],
                 custom_classes: Mapping[str, int] | Iterable[str] = (),
                 custom_traits: Iterable[str] = ()) -> ProviderArrays:
    """``providers``: uuid -> ProviderState (provider, inventories, usages,
    traits, aggregates), as ``PlacementStore.snapshot()`` returns them."""
    states = sorted(providers.values(),
                    key=lambda s: (s.provider.created_at, s.provider.uuid))
    uuids = [s.provider.uuid for s in states]
    index = {u: i for i, u in enumerate(uuids)}
    n = len(uuids)
    parent = np.full(n, -1, dtype=np.int64)
    root = np.arange(n, dtype=np.int64)
    for i, s in enumerate(states):
        p = s.provider
        if p.parent_uuid is not None and p.parent_uuid in index:
            parent[i] = index[p.parent_uuid]
        root[i] = index.get(p.root_uuid, i)
    custom_ids = dict(custom_classes) if isinstance(custom_classes, Mapping) \
        else {name: k for k, name in enumerate(custom_classes)}
    rc_set = sorted({rc for s in states for rc in s.inventories},
                    key=lambda rc: class_order(rc, custom_ids))
    rc_index = {rc: j for j, rc in enumerate(rc_set)}
    r = len(rc_set)
    capacity = np.full((n, r), -1.0)
    cap_int = np.zeros((n, r), dtype=np.int64)
    used = np.zeros((n, r), dtype=np.int64)
    min_unit = np.zeros((n, r), dtype=np.int64)
    max_unit = np.zeros((n, r), dtype=np.int64)
    step = np.zeros((n, r), dtype=np.int64)
    has_inv = np.zeros((n, r), dtype=bool)
    for i, s in enumerate(states):
        for rc, inv in s.inventories.items():
            j = rc_index[rc]
            capacity[i, j] = (inv.total - inv.reserved) * inv.allocation_ratio
            cap_int[i, j] = int(capacity[i, j])
            min_unit[i, j], max_unit[i, j], step[i, j] = inv.min_unit, inv.max_unit, inv.step_size
            has_inv[i, j] = True
        for rc, amount in s.usages.items():
            if rc in rc_index:
                used[i, rc_index[rc]] = amount
    trait_names = sorted({t for s in states for t in s.traits})
    trait_index = {t: k for k, t in enumerate(trait_names)}
    agg_names = sorted({a for s in states for a in s.aggregates})
    agg_index = {a: k for k, a in enumerate(agg_names)}
    known_classes = frozenset(STANDARD_CLASSES) | frozenset(custom_ids)
    return ProviderArrays(
        version=version, uuids=uuids, index=index, parent=parent, root=root,
        rc_names=rc_set, rc_index=rc_index, capacity=capacity, cap_int=cap_int, used=used,
        min_unit=min_unit, max_unit=max_unit, step=step, has_inv=has_inv,
        trait_index=trait_index, trait_bits=_bits([s.traits for s in states], trait_index),
        agg_index=agg_index, agg_bits=_bits([s.aggregates for s in states], agg_index),
        traits=[tuple(sorted(s.traits)) for s in states],
        known_classes=known_classes, known_traits=STANDARD_TRAITS | frozenset(custom_traits),
        class_key={rc: class_order(rc, custom_ids) for rc in known_classes},
    )
