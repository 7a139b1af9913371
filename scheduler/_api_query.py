"""Parsing of Placement's query-string mini languages (shared with
``GET /allocation_candidates``).

- ``resources=VCPU:2,MEMORY_MB:512`` -> ``{"VCPU": 2, "MEMORY_MB": 512}``
- ``required=A,!B,in:C,D`` (``!`` from 1.22, ``in:`` from 1.39, repeated
  parameter from 1.39) -> ``TraitFilter(all_of, any_of, forbidden)``
- ``member_of=in:U1,U2`` / ``member_of=!in:U3`` (repeatable from 1.24,
  ``!`` from 1.32) -> ``AggregateFilter(any_of_groups, forbidden)``

Each parser raises ``PlacementError`` 400 with Placement's message. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._api_common import is_uuid, normalize_uuid
from ._store_records import QUERYPARAM_BAD_VALUE, bad_request
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


def parse_resources(value: str, param: str = "resources") -> dict[str, int]:
    out: dict[str, int] = {}

    def form(got: str) -> str:
        return (f"Badly formed {param} parameter. Expected {param} query string parameter in "
                f"form: ?{param}=VCPU:2,MEMORY_MB:1024. Got: {got}.")

    if not value:
        raise bad_request(form(value), QUERYPARAM_BAD_VALUE)
    for item in value.split(","):
        rc, sep, amount = item.partition(":")
        rc = rc.strip()
        if not sep or not rc:
            raise bad_request(form(item), QUERYPARAM_BAD_VALUE)
        try:
            n = int(amount)
        except ValueError:
            raise bad_request(
                f"Requested resource {rc} expected positive integer amount. Got: {amount}.",
                QUERYPARAM_BAD_VALUE) from None
        if n < 1:
            raise bad_request(
                f"Requested resource {rc} requires amount >= 1. Got: {n}.",
                QUERYPARAM_BAD_VALUE)
        if rc in out:
            raise bad_request(f"Duplicate resource class in {param}: {rc}",
                              QUERYPARAM_BAD_VALUE)
        out[rc] = n
    return out


def parse_required(values: list[str], version: Version, param: str = "required") -> TraitFilter:
    allow_forbidden = version.at_least(22)
    allow_any = version.at_least(39)
    form = ("HW_CPU_X86_VMX,!CUSTOM_MAGIC" if allow_forbidden else "HW_CPU_X86_VMX,CUSTOM_MAGIC")
    if allow_any:
        form = "HW_CPU_X86_VMX,!CUSTOM_MAGIC or in:HW_CPU_X86_VMX,CUSTOM_MAGIC"
    all_of: set[str] = set()
    forbidden: set[str] = set()
    any_of: list[frozenset[str]] = []
    for value in values:
        def bad(v: str = value) -> Exception:
            return bad_request(f"Invalid query string parameters: Expected '{param}' parameter "
                               f"value of the form: {form}. Got: {v}", QUERYPARAM_BAD_VALUE)
        if allow_any and value.startswith("in:"):
            names = value[3:].split(",")
            if not all(names) or any(n.startswith("!") for n in names):
                raise bad()
            any_of.append(frozenset(names))
            continue
        names = value.split(",")
        if not all(names):
            raise bad()
        for name in names:
            if name.startswith("!"):
                if not allow_forbidden or not name[1:]:
                    raise bad()
                forbidden.add(name[1:])
            else:
                all_of.add(name)
    conflicting = all_of & forbidden
    if conflicting:
        raise bad_request(f"Conflicting required and forbidden traits found in the following "
                          f"traits keys: {param}: ({', '.join(sorted(conflicting))})",
                          QUERYPARAM_BAD_VALUE)
    return TraitFilter(frozenset(all_of), tuple(any_of), frozenset(forbidden))


def parse_member_of(values: list[str], version: Version) -> AggregateFilter:
    allow_forbidden = version.at_least(32)
    if len(values) > 1 and not version.at_least(24):
        raise bad_request("Multiple member_of parameters are not supported in the specified "
                          "microversion.", QUERYPARAM_BAD_VALUE)
    groups: list[frozenset[str]] = []
    forbidden: set[str] = set()
    for value in values:
        negate = False
        text = value
        if text.startswith("!"):
            if not allow_forbidden:
                raise bad_request("Forbidden member_of parameters are not supported in the "
                                  "specified microversion.", QUERYPARAM_BAD_VALUE)
            negate, text = True, text[1:]
        if text.startswith("in:"):
            text = text[3:]
            if negate and not text:
                raise bad_request("Invalid query string parameters: Expected 'member_of' "
                                  f"parameter to contain valid UUID(s). Got: {value}")
        elif negate and "," in text:
            raise bad_request("Invalid query string parameters: Expected 'member_of' "
                              f"parameter to contain valid UUID(s). Got: {value}")
        uuids = text.split(",")
        if not all(is_uuid(u) for u in uuids):
            raise bad_request("Invalid query string parameters: Expected 'member_of' "
                              f"parameter to contain valid UUID(s). Got: {value}")
        normalized = frozenset(normalize_uuid(u) for u in uuids)
        if negate:
            forbidden |= normalized
        else:
            groups.append(normalized)
    return AggregateFilter(tuple(groups), frozenset(forbidden))
