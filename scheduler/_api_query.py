"""Parsing of Placement's query-string mini languages for GET /resource_providers.

- ``resources=VCPU:2,MEMORY_MB:512`` -> ``{"VCPU": 2, "MEMORY_MB": 512}``
- ``required=A,!B`` (``!`` from 1.22) and ``required=in:C,D`` (from 1.39,
  when the parameter may also repeat; before, the last one wins)
  -> ``TraitFilter(all_of, any_of, forbidden)``
- ``member_of=U1`` / ``in:U1,U2`` / ``!U3`` / ``!in:U3,U4`` (repeatable from
  1.24, ``!`` from 1.32) -> ``AggregateFilter(any_of, forbidden)``

The rules and messages are OpenStack Placement's (``placement/util.py``):
clients and conformance suites match on them. Each parser raises a 400
``PlacementError``. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._api_common import is_uuid, normalize_uuid
from ._store_records import bad_request
from .microversion import Version


@dataclass(frozen=True, slots=True)
class TraitFilter:
    """A provider matches when it has every ``all_of`` trait, at least one
    trait of each ``any_of`` group and none of ``forbidden``."""

    all_of: frozenset[str] = frozenset()
    any_of: tuple[frozenset[str], ...] = ()
    forbidden: frozenset[str] = frozenset()

    def names(self) -> set[str]:
        out = set(self.all_of) | set(self.forbidden)
        for group in self.any_of:
            out |= group
        return out

    def matches(self, traits: frozenset[str] | set[str]) -> bool:
        return (self.all_of <= traits and not (self.forbidden & traits)
                and all(group & traits for group in self.any_of))


@dataclass(frozen=True, slots=True)
class AggregateFilter:
    """Every group in ``any_of`` must intersect the provider's aggregates;
    none of ``forbidden`` may."""

    any_of: tuple[frozenset[str], ...] = ()
    forbidden: frozenset[str] = field(default_factory=frozenset)

    def matches(self, aggregates: frozenset[str] | set[str]) -> bool:
        return (all(group & aggregates for group in self.any_of)
                and not (self.forbidden & aggregates))


_FORM = "?resources=VCPU:2,MEMORY_MB:1024"


def parse_resources(value: str) -> dict[str, int]:
    if value.strip() == "":
        raise bad_request("Badly formed resources parameter. Expected resources query "
                          f"string parameter in form: {_FORM}. Got: empty string.")
    out: dict[str, int] = {}
    for item in value.split(","):
        parts = item.split(":")
        if len(parts) != 2:
            raise bad_request("Badly formed resources parameter. Expected resources query "
                              f"string parameter in form: {_FORM}. Got: {item}.")
        rc, raw = parts
        try:
            amount = int(raw)
        except ValueError:
            raise bad_request(f"Requested resource {rc} expected positive integer amount. "
                              f"Got: {raw}.") from None
        if amount < 1:
            raise bad_request(f"Requested resource {rc} requires amount >= 1. Got: {amount}.")
        out[rc] = amount
    return out


def _parse_one_required(value: str, allow_forbidden: bool,
                        allow_any: bool) -> tuple[list[frozenset[str]], set[str]]:
    if value.startswith("in:"):
        if not allow_any:
            raise bad_request("Invalid query string parameters: The format "
                              "'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' only supported since "
                              f"microversion 1.39. Got: {value}")
        group = frozenset(t.strip() for t in value[3:].split(","))
        if not all(group):
            raise bad_request("Invalid query string parameters: Expected 'required' "
                              "parameter value of the form: in:HW_CPU_X86_VMX,CUSTOM_MAGIC. "
                              f"Got an empty trait in: {value}")
        if any(t.startswith("!") for t in group):
            raise bad_request("Invalid query string parameters: The format "
                              "'in:HW_CPU_X86_VMX,CUSTOM_MAGIC' does not support forbidden "
                              f"traits. Got: {value}")
        return [group], set()
    names = [t.strip() for t in value.split(",")]
    forbidden = {t.lstrip("!") for t in names if t.startswith("!")}
    if not all(names) or not all(forbidden):
        form = "HW_CPU_X86_VMX,!CUSTOM_MAGIC" if allow_forbidden else \
            "HW_CPU_X86_VMX,CUSTOM_MAGIC"
        raise bad_request("Invalid query string parameters: Expected 'required' parameter "
                          f"value of the form: {form}. Got an empty trait in: {value}")
    if forbidden and not allow_forbidden:
        raise bad_request("Invalid query string parameters: Expected 'required' parameter "
                          f"value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: {value}")
    return [frozenset({t}) for t in names if not t.startswith("!")], forbidden


def parse_required(values: list[str], version: Version) -> TraitFilter:
    """All ``required`` values of the request (in order)."""
    allow_any = version.at_least(39)
    if not allow_any:
        values = values[-1:]  # before 1.39 the last one wins
    groups: list[frozenset[str]] = []
    forbidden: set[str] = set()
    for value in values:
        g, f = _parse_one_required(value, version.at_least(22), allow_any)
        groups += g
        forbidden |= f
    all_of = frozenset(next(iter(g)) for g in groups if len(g) == 1)
    any_of = tuple(g for g in groups if len(g) > 1)
    return TraitFilter(all_of, any_of, frozenset(forbidden))


def parse_member_of(values: list[str], version: Version, suffix: str = "") -> AggregateFilter:
    """All ``member_of<suffix>`` values of the request (in order); Placement's
    ``util.normalize_member_of_qs_params``, shared by the provider list and
    allocation candidates (granular groups pass their suffix)."""
    if len(values) > 1 and not version.at_least(24):
        raise bad_request(f"Multiple member_of{suffix} parameters are not supported")
    groups: list[frozenset[str]] = []
    forbidden: set[str] = set()
    for value in values:
        if "," in value and not (value.startswith("in:") or value.startswith("!in:")):
            raise bad_request("Multiple values for 'member_of' must be prefixed with the "
                              "'in:' or '!in:' keyword using the valid microversion. "
                              f"Got: {value}")
        required: set[str] = set()
        negated: set[str] = set()
        if value.startswith("!in:"):
            negated = set(value[4:].split(","))
        elif value.startswith("!"):
            negated = {value[1:]}
        elif value.startswith("in:"):
            required = set(value[3:].split(","))
        else:
            required = {value}
        for agg in required | negated:
            if not is_uuid(agg):
                raise bad_request("Invalid query string parameters: Expected 'member_of' "
                                  f"parameter to contain valid UUID(s). Got: {agg}")
        if required:
            groups.append(frozenset(normalize_uuid(a) for a in required))
        if negated:
            if not version.at_least(32):
                raise bad_request(f"Forbidden member_of{suffix} parameters are not supported in the "
                                  "specified microversion")
            forbidden |= {normalize_uuid(a) for a in negated}
    return AggregateFilter(tuple(groups), frozenset(forbidden))
