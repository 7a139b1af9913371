"""Records and domain errors of the placement store.

Records are frozen, slotted dataclasses: what the store hands out is a value,
never a live view of LMDB. Errors carry the HTTP status and Placement error
code they map to, so the API layer turns them into error documents without
knowing which store rule failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_INT = 2147483647  # Placement's db.MAX_INT: the default max_unit
INCOMPLETE_CONSUMER_ID = "00000000-0000-0000-0000-000000000000"  # project/user before 1.8

# Placement error codes (placement/errors.py)
DEFAULT = "placement.undefined_code"
CONCURRENT_UPDATE = "placement.concurrent_update"
DUPLICATE_NAME = "placement.duplicate_name"
PROVIDER_IN_USE = "placement.resource_provider.inuse"
PROVIDER_CANNOT_DELETE_PARENT = "placement.resource_provider.cannot_delete_parent"
RESOURCE_PROVIDER_NOT_FOUND = "placement.resource_provider.not_found"
INVENTORY_INUSE = "placement.inventory.inuse"
ILLEGAL_DUPLICATE_QUERYPARAM = "placement.query.duplicate_key"
QUERYPARAM_BAD_VALUE = "placement.query.bad_value"
QUERYPARAM_MISSING_VALUE = "placement.query.missing_value"


class PlacementError(Exception):
    """A request the store (or API) refuses; maps 1:1 to an error document."""

    def __init__(self, status: int, detail: str, code: str = DEFAULT) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code


def bad_request(detail: str, code: str = DEFAULT) -> PlacementError:
    return PlacementError(400, detail, code)


def not_found(detail: str, code: str = DEFAULT) -> PlacementError:
    return PlacementError(404, detail, code)


def conflict(detail: str, code: str = DEFAULT) -> PlacementError:
    return PlacementError(409, detail, code)


@dataclass(frozen=True, slots=True)
class Inventory:
    """One resource class of one provider. ``capacity`` is what claims may use
    (invariant 7): ``int((total - reserved) * allocation_ratio)``."""

    resource_class: str
    total: int
    reserved: int = 0
    min_unit: int = 1
    max_unit: int = MAX_INT
    step_size: int = 1
    allocation_ratio: float = 1.0

    @property
    def capacity(self) -> int:
        return int((self.total - self.reserved) * self.allocation_ratio)

    def fields(self) -> dict[str, int | float]:
        """The API representation (without the resource class key)."""
        return {
            "total": self.total, "reserved": self.reserved, "min_unit": self.min_unit,
            "max_unit": self.max_unit, "step_size": self.step_size,
            "allocation_ratio": self.allocation_ratio,
        }

    def allows(self, amount: int) -> bool:
        """min_unit / max_unit / step_size constraints for one allocation."""
        return (self.min_unit <= amount <= self.max_unit
                and amount % self.step_size == 0)


@dataclass(frozen=True, slots=True)
class Provider:
    """A resource provider row. ``root_uuid`` equals ``uuid`` for a root."""

    uuid: str
    name: str
    generation: int
    parent_uuid: str | None
    root_uuid: str
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ProviderState:
    """A provider with everything the candidates search needs."""

    provider: Provider
    inventories: Mapping[str, Inventory]
    usages: Mapping[str, int]
    traits: frozenset[str]
    aggregates: frozenset[str]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """All providers at one committed store ``version`` (a counter bumped by
    every write batch, so readers can cache derived arrays per version)."""

    version: int
    providers: Mapping[str, ProviderState]


@dataclass(frozen=True, slots=True)
class Consumer:
    """A consumer and its allocations ``{provider uuid: {class: amount}}``."""

    uuid: str
    project_id: str
    user_id: str
    generation: int
    consumer_type: str | None
    allocations: Mapping[str, Mapping[str, int]]
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ConsumerWrite:
    """Replace one consumer's allocations (an empty mapping removes them all).

    ``check_generation``: compare ``consumer_generation`` with the stored one
    (None means "the consumer must not exist yet"), as from microversion 1.28.
    ``consumer_type``: set it when not None (1.38); otherwise keep the stored
    one. ``project_id``/``user_id`` None keep the stored ones (or the
    incomplete-consumer placeholder for a new consumer)."""

    consumer_uuid: str
    allocations: Mapping[str, Mapping[str, int]]
    project_id: str | None = None
    user_id: str | None = None
    consumer_generation: int | None = None
    check_generation: bool = False
    consumer_type: str | None = None
    rp_generations: Mapping[str, int] = field(default_factory=dict)
