"""Render ``Candidates`` as Placement's JSON body for one microversion (pure).

Shapes (handlers/allocation_candidate.py):

- allocation_requests: before 1.12 a list ``[{"resource_provider": {"uuid"},
  "resources"}]`` per request; from 1.12 a dict keyed by provider uuid;
  ``mappings`` (suffix -> provider uuids) from 1.34.
- provider_summaries: ``{uuid: {"resources": {class: {capacity, used}}}}``;
  only the requested classes before 1.27, every class from 1.27; ``traits``
  from 1.17; ``parent_provider_uuid``/``root_provider_uuid`` from 1.29.

Bodies are assembled from JSON fragments: a provider's summary fragment is
cached on the arrays (one store version) per shape, so repeated queries do
not re-encode 10,000 summaries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from ._cand_arrays import ProviderArrays
from .candidates import Candidates, RequestGroup

_dumps = json.JSONEncoder(separators=(", ", ": ")).encode


def _resources_json(arr: ProviderArrays, p: int, classes: frozenset[str] | None) -> str:
    parts = []
    row_has = arr.has_inv[p]
    for j, rc in enumerate(arr.rc_names):
        if row_has[j] and (classes is None or rc in classes):
            parts.append(f'"{rc}": {{"capacity": {int(arr.cap_int[p, j])}, '
                         f'"used": {int(arr.used[p, j])}}}')
    return "{" + ", ".join(parts) + "}"


def _trait_order(name: str) -> tuple[bool, str]:
    """Placement lists a provider's traits by trait id: the standard ones
    (synced at start) before custom ones (created later)."""
    return name.startswith("CUSTOM_"), name


def summary_fragment(arr: ProviderArrays, p: int, classes: frozenset[str] | None,
                     traits: bool, tree: bool) -> str:
    key = ("sum", p, classes, traits, tree)
    hit = arr.cache.get(key)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    body = f'"resources": {_resources_json(arr, p, classes)}'
    if traits:
        body += f', "traits": {_dumps(sorted(arr.traits[p], key=_trait_order))}'
    if tree:
        parent = int(arr.parent[p])
        parent_json = _dumps(arr.uuids[parent]) if parent >= 0 else "null"
        body += (f', "parent_provider_uuid": {parent_json}, '
                 f'"root_provider_uuid": "{arr.uuids[int(arr.root[p])]}"')
    frag = f'"{arr.uuids[p]}": {{{body}}}'
    arr.cache[key] = frag
    return frag


def _request_json(arr: ProviderArrays, resources: Iterable[tuple[int, str, int]],
                  mappings: tuple[tuple[str, tuple[int, ...]], ...] | None,
                  as_dict: bool) -> str:
    per: dict[int, dict[str, int]] = {}
    for p, rc, n in resources:
        per.setdefault(p, {})[rc] = n
    if as_dict:
        allocs = ", ".join(f'"{arr.uuids[p]}": {{"resources": {_dumps(res)}}}'
                           for p, res in per.items())
        out = f'{{"allocations": {{{allocs}}}'
        if mappings is not None:
            maps = ", ".join(f'{_dumps(s)}: {_dumps([arr.uuids[p] for p in ps])}'
                             for s, ps in mappings)
            out += f', "mappings": {{{maps}}}'
        return out + "}"
    allocs = ", ".join(f'{{"resource_provider": {{"uuid": "{arr.uuids[p]}"}}, '
                       f'"resources": {_dumps(res)}}}' for p, res in per.items())
    return f'{{"allocations": [{allocs}]}}'


def _flat_requests(arr: ProviderArrays, g: RequestGroup, idx: list[int], with_maps: bool,
                   as_dict: bool) -> list[str]:
    res = _dumps(dict(g.resources))
    uuids = arr.uuids
    if not as_dict:
        return [f'{{"allocations": [{{"resource_provider": {{"uuid": "{uuids[p]}"}}, '
                f'"resources": {res}}}]}}' for p in idx]
    if not with_maps:
        return [f'{{"allocations": {{"{uuids[p]}": {{"resources": {res}}}}}}}' for p in idx]
    suffix = _dumps(g.suffix)
    return [f'{{"allocations": {{"{uuids[p]}": {{"resources": {res}}}}}, '
            f'"mappings": {{{suffix}: ["{uuids[p]}"]}}}}' for p in idx]


def render(arr: ProviderArrays, cands: Candidates, requested: frozenset[str],
           version: tuple[int, int]) -> bytes:
    """The response body; ``requested``: every class named by any group."""
    as_dict = version >= (1, 12)
    with_maps = version >= (1, 34)
    classes = None if version >= (1, 27) else requested
    traits, tree = version >= (1, 17), version >= (1, 29)
    if cands.flat is not None:
        reqs = _flat_requests(arr, cands.flat[0], cands.flat[1].tolist(), with_maps, as_dict)
    else:
        reqs = [_request_json(arr, a.resources, a.mappings if with_maps else None, as_dict)
                for a in cands.found]
    sums = [summary_fragment(arr, p, classes, traits, tree) for p in cands.summaries]
    return ('{"allocation_requests": [' + ", ".join(reqs) + '], "provider_summaries": {'
            + ", ".join(sums) + "}}").encode()
