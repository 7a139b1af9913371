"""``GET /allocation_candidates``: query parsing, validation, the cached
provider arrays, and the handler (shell around ``scheduler.candidates``).

Parsing follows OpenStack Placement 16 (handlers/allocation_candidate.py,
lib.py, util.py, schemas/allocation_candidate.py): the query dict is
validated against the JSON schema of the microversion (so unknown or
too-new parameters answer 400 ``Invalid query string parameters: ...``),
then request groups are parsed by suffix with Placement's messages.

Arrays cache (``_cand_cache.arrays_for``): one ``ProviderArrays`` per store
version; requests between writes share it, a usage-only change is cheap.

Config: ``RINGSTACK_PLACEMENT_RANDOMIZE=1`` is Placement's
``randomize_allocation_candidates``.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any
from urllib.parse import parse_qsl

from . import _api_query
from ._api_common import Reply, is_uuid, normalize_uuid, validate
from ._cand_cache import arrays_for
from ._cand_render import render
from ._store_records import (
    ILLEGAL_DUPLICATE_QUERYPARAM,
    QUERYPARAM_BAD_VALUE,
    QUERYPARAM_MISSING_VALUE,
    PlacementError,
    bad_request,
)
from .candidates import CandidateQuery, RequestGroup, find_candidates
from .microversion import Version

RANDOMIZE = os.environ.get("RINGSTACK_PLACEMENT_RANDOMIZE", "") not in ("", "0")
GROUP_PAT, GROUP_PAT_1_33 = r"[1-9][0-9]*", r"[a-zA-Z0-9_-]{1,64}"
_KEYS = "resources|required|member_of|in_tree"
_KEY_RE = re.compile(rf"^({_KEYS})({GROUP_PAT})?$")
_KEY_RE_1_33 = re.compile(rf"^({_KEYS})({GROUP_PAT_1_33})?$")

# --- the query schemas, per microversion (schemas/allocation_candidate.py) ---
S_1_10: dict[str, Any] = {"type": "object", "properties": {"resources": {"type": "string"}},
                          "required": ["resources"], "additionalProperties": False}
S_1_16 = copy.deepcopy(S_1_10)
S_1_16["properties"]["limit"] = {"type": ["integer", "string"], "pattern": "^[1-9][0-9]*$",
                                 "minimum": 1, "minLength": 1}
S_1_17 = copy.deepcopy(S_1_16)
S_1_17["properties"]["required"] = {"type": ["string"]}
S_1_21 = copy.deepcopy(S_1_17)
S_1_21["properties"]["member_of"] = {"type": ["string"]}
S_1_25 = copy.deepcopy(S_1_21)
for _k in ("resources", "required", "member_of"):
    del S_1_25["properties"][_k]
del S_1_25["required"]
_FMT = "^%s(" + GROUP_PAT + ")?$"
S_1_25["patternProperties"] = {_FMT % k: {"type": "string"}
                               for k in ("resources", "required", "member_of")}
S_1_25["properties"]["group_policy"] = {"type": "string", "enum": ["none", "isolate"]}
S_1_31 = copy.deepcopy(S_1_25)
S_1_31["patternProperties"][_FMT % "in_tree"] = {"type": "string"}
S_1_33 = copy.deepcopy(S_1_31)
S_1_33["patternProperties"] = {f"^{k}({GROUP_PAT_1_33})?$": {"type": "string"}
                               for k in ("resources", "required", "member_of", "in_tree")}
S_1_35 = copy.deepcopy(S_1_33)
S_1_35["properties"]["root_required"] = {"type": ["string"]}
S_1_36 = copy.deepcopy(S_1_35)
S_1_36["properties"]["same_subtree"] = {"type": ["string"]}
_SCHEMAS = [((1, 36), S_1_36), ((1, 35), S_1_35), ((1, 33), S_1_33), ((1, 31), S_1_31),
            ((1, 25), S_1_25), ((1, 21), S_1_21), ((1, 17), S_1_17), ((1, 16), S_1_16)]


def schema_for(version: tuple[int, int]) -> dict[str, Any]:
    for v, schema in _SCHEMAS:
        if version >= v:
            return schema
    return S_1_10


class Query:
    """A parsed query string: ``items`` in order, ``getall(key)``."""

    def __init__(self, query_string: str) -> None:
        self.items = parse_qsl(query_string, keep_blank_values=True)

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self.items if k == key]

    def last_dict(self) -> dict[str, str]:
        return dict(self.items)


def parse_resources(qs: str) -> tuple[tuple[str, int], ...]:
    """util.normalize_resources_qs_param (one implementation, in _api_query)."""
    return tuple(_api_query.parse_resources(qs).items())


def parse_traits(val: str, allow_forbidden: bool, allow_any: bool
                 ) -> tuple[list[frozenset[str]], set[str]]:
    """util.normalize_traits_qs_param."""
    if val.startswith("in:"):
        if not allow_any:
            raise bad_request("Invalid query string parameters: The format "
                              "'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' only supported since "
                              f"microversion 1.39. Got: {val}")
        any_traits = {s.strip() for s in val[3:].split(",")}
        if not all(any_traits):
            raise bad_request("Invalid query string parameters: Expected 'required' parameter "
                              "value of the form: in:HW_CPU_X86_VMX,CUSTOM_MAGIC. Got an empty "
                              f"trait in: {val}")
        if any(t.startswith("!") for t in any_traits):
            raise bad_request("Invalid query string parameters: The format "
                              "'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' does not support forbidden "
                              f"traits. Got: {val}")
        return [frozenset(any_traits)], set()
    all_traits = [s.strip() for s in val.split(",")]
    forbidden = {t.lstrip("!") for t in all_traits if t.startswith("!")}
    if not all(t for t in [*forbidden, *all_traits]):
        form = "HW_CPU_X86_VMX,!CUSTOM_MAGIC" if allow_forbidden else "HW_CPU_X86_VMX,CUSTOM_MAGIC"
        raise bad_request("Invalid query string parameters: Expected 'required' parameter "
                          f"value of the form: {form}. Got an empty trait in: {val}")
    required = [frozenset({t}) for t in all_traits if not t.startswith("!")]
    if forbidden and not allow_forbidden:
        raise bad_request("Invalid query string parameters: Expected 'required' parameter "
                          f"value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: {val}")
    return required, forbidden


def parse_member_of(q: Query, suffix: str, version: tuple[int, int]
                    ) -> tuple[tuple[frozenset[str], ...], frozenset[str]]:
    """util.normalize_member_of_qs_params (one implementation, in _api_query)."""
    found = _api_query.parse_member_of(q.getall("member_of" + suffix), Version(*version), suffix)
    return found.any_of, found.forbidden


class _Group:
    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.resources: tuple[tuple[str, int], ...] = ()
        self.required: list[frozenset[str]] = []
        self.forbidden: set[str] = set()
        self.member_of: tuple[frozenset[str], ...] = ()
        self.forbidden_aggs: frozenset[str] = frozenset()
        self.in_tree: str | None = None

    def freeze(self) -> RequestGroup:
        return RequestGroup(self.suffix, self.resources, tuple(self.required),
                            frozenset(self.forbidden), self.member_of, self.forbidden_aggs,
                            self.in_tree)


def parse_query(query_string: str, version: tuple[int, int]) -> CandidateQuery:
    """The whole query -> ``CandidateQuery``; ``PlacementError`` 400 on bad input."""
    q = Query(query_string)
    validate(q.last_dict(), schema_for(version), query=True)
    # RequestWideParams.from_request
    limits = q.getall("limit")
    limit = int(limits[0]) if limits else None
    policies = q.getall("group_policy")
    group_policy = policies[0] if policies else None
    root_req: set[str] = set()
    root_forb: set[str] = set()
    roots = q.getall("root_required")
    if roots:
        if len(roots) > 1:
            raise bad_request("Query parameter 'root_required' may be specified only once.",
                              ILLEGAL_DUPLICATE_QUERYPARAM)
        req, root_forb = parse_traits(roots[0], True, False)
        root_req = {t for s in req for t in s}
        conflicts = root_req & root_forb
        if conflicts:
            raise bad_request("Conflicting required and forbidden traits found in "
                              f"root_required: {', '.join(conflicts)}", QUERYPARAM_BAD_VALUE)
    same_subtrees: list[frozenset[str]] = []
    for val in q.getall("same_subtree"):
        suffixes = frozenset(s.strip() for s in val.split(","))
        if "" in suffixes:
            raise bad_request("Empty string (unsuffixed group) can not be specified in "
                              "`same_subtree` ", QUERYPARAM_BAD_VALUE)
        same_subtrees.append(suffixes)
    # RequestGroup.dict_from_request
    pattern = _KEY_RE_1_33 if version >= (1, 33) else _KEY_RE
    groups: dict[str, _Group] = {}
    for key, val in q.items:
        m = pattern.match(key)
        if not m:
            continue
        prefix, suffix = m.group(1), m.group(2) or ""
        g = groups.setdefault(suffix, _Group(suffix))
        if prefix == "resources":
            g.resources = parse_resources(val)
        elif prefix == "required":
            values = q.getall("required" + suffix)
            if version < (1, 39):
                values = values[-1:]
            g.required, g.forbidden = [], set()
            for value in values:
                rts, fts = parse_traits(value, version >= (1, 22), version >= (1, 39))
                g.required += rts
                g.forbidden |= fts
        elif prefix == "member_of":
            g.member_of, g.forbidden_aggs = parse_member_of(q, suffix, version)
        else:
            ret = val.strip()
            if not is_uuid(ret):
                raise bad_request("Invalid query string parameters: Expected 'in_tree' "
                                  f"parameter to be a format of uuid. Got: {val}")
            g.in_tree = normalize_uuid(ret)
    _check_groups(groups, same_subtrees, version)
    if not group_policy and sum(1 for s in groups if s) > 1:
        raise bad_request('The "group_policy" parameter is required when specifying more '
                          'than one "resources{N}" parameter.')
    return CandidateQuery(tuple(g.freeze() for g in groups.values()), limit, group_policy,
                          frozenset(root_req), frozenset(root_forb), tuple(same_subtrees),
                          nested_aware=version >= (1, 29), randomize=RANDOMIZE)


def _check_groups(groups: dict[str, _Group], same_subtrees: list[frozenset[str]],
                  version: tuple[int, int]) -> None:
    if version >= (1, 36):
        resourceless = [s for s, g in groups.items() if not g.resources]
        subtree = set().union(*same_subtrees)
        if len(resourceless) == len(groups):
            raise bad_request("There must be at least one resources or resources[$S] "
                              "parameter.", QUERYPARAM_MISSING_VALUE)
        bad = [s for s in resourceless if s not in subtree]
        if bad:
            raise bad_request("Resourceless suffixed group request should be specified in "
                              f"`same_subtree` query param: bad group(s) - {bad}.",
                              QUERYPARAM_BAD_VALUE)
        bad = [s for s in subtree if s not in groups]
        if bad:
            raise bad_request("Real suffixes should be specified in `same_subtree`: "
                              f"{bad} not found in {list(groups)}.", QUERYPARAM_BAD_VALUE)
    else:
        orphans = [f"required{s}" for s, g in groups.items()
                   if g.required and not g.resources]  # positive traits only, as Placement
        if orphans:
            raise bad_request("All traits parameters must be associated with resources.  "
                              "Found the following orphaned traits keys: " + ", ".join(orphans))
        orphans = [f"member_of{s}" for s, g in groups.items()
                   if not g.resources and (g.member_of or g.forbidden_aggs)]
        if orphans:
            raise bad_request("All member_of parameters must be associated with resources. "
                              "Found the following orphaned member_of keys: "
                              + ", ".join(orphans))
        if not all(g.resources for g in groups.values()):
            raise bad_request("All request groups must specify resources.")
        if not groups:
            raise bad_request("At least one request group (`resources` or `resources{$S}`) "
                              "is required.")
    if version >= (1, 22):
        conflicts = [f"required{s}: ({', '.join(sorted(any_traits))})"
                     for s, g in groups.items() for any_traits in g.required
                     if all(t in g.forbidden for t in any_traits)]
        if conflicts:
            raise bad_request("Conflicting required and forbidden traits found in the "
                              "following traits keys: " + ", ".join(sorted(conflicts)))


def _accepts_json(accept: str | None) -> bool:
    if not accept:
        return True
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("application/json", "application/*", "*/*", ""):
            return True
    return False


async def handle_allocation_candidates(ctx: Any, store: Any, version: Any) -> Reply:
    """The route handler (placement_api routes GET /allocation_candidates here)."""
    v = (int(version[0]), int(version[1]))
    if v < (1, 10):
        raise PlacementError(404, "The resource could not be found.")
    if not _accepts_json(ctx.headers.get("accept")):
        raise PlacementError(406, "Only application/json is provided")
    query = parse_query(ctx.query_string, v)
    arrays = await arrays_for(store)
    cands = find_candidates(arrays, query)
    requested = frozenset(rc for g in query.groups for rc, _ in g.resources)
    return Reply(200, render(arrays, cands, requested, v))  # bytes: sent as they are
