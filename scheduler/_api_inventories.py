"""Handlers: /resource_providers/{uuid}/inventories[/{class}] and .../usages.

Validation as Placement: totals 1..MAX_INT, reserved <= total (strictly
below total before 1.26); every write checks the
provider generation (409 ``placement.concurrent_update``) and removing a
class that is in use is refused (409 ``placement.inventory.inuse``).
DELETE of all inventories needs 1.5 (405 before).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import _store_providers as sp
from ._api_common import Ctx, Reply
from ._api_providers import path_uuid
from ._store_allocations import provider_usages
from ._store_records import (
    CONCURRENT_UPDATE,
    MAX_INT,
    Inventory,
    PlacementError,
    Provider,
    bad_request,
    not_found,
)
from ._store_txn import Tx
from .microversion import Version

if TYPE_CHECKING:
    from .placement_api import PlacementApp

RC_PATTERN = "^[A-Z0-9_]+$"
FLOAT_MAX = 3.40282e38
_INT = {"type": "integer", "maximum": MAX_INT}
BASE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "resource_provider_generation": {"type": "integer"},
        "total": {**_INT, "minimum": 1},
        "reserved": {**_INT, "minimum": 0},
        "min_unit": {**_INT, "minimum": 1},
        "max_unit": {**_INT, "minimum": 1},
        "step_size": {**_INT, "minimum": 1},
        "allocation_ratio": {"type": "number", "maximum": FLOAT_MAX, "minimum": 0},
    },
    "required": ["total", "resource_provider_generation"],
    "additionalProperties": False,
}
POST_SCHEMA = copy.deepcopy(BASE_SCHEMA)
POST_SCHEMA["properties"]["resource_class"] = {"type": "string", "pattern": RC_PATTERN}
POST_SCHEMA["required"] = ["total", "resource_class"]
RECORD_SCHEMA = copy.deepcopy(BASE_SCHEMA)
RECORD_SCHEMA["required"] = ["total"]
PUT_ALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "resource_provider_generation": {"type": "integer"},
        "inventories": {"type": "object", "patternProperties": {RC_PATTERN: RECORD_SCHEMA},
                        "additionalProperties": False},
    },
    "required": ["resource_provider_generation", "inventories"],
    "additionalProperties": False,
}
FIELDS = ("total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio")


def make_inventory(uuid: str, rc: str, data: dict[str, Any], version: Version,
                   action: str = "update") -> Inventory:
    """Build and check one inventory record (400 with Placement's wording)."""
    inv = Inventory(rc, **{k: data[k] for k in FIELDS if k in data})
    inv = Inventory(rc, inv.total, inv.reserved, inv.min_unit, inv.max_unit, inv.step_size,
                    float(inv.allocation_ratio))
    # Placement: capacity <= 0 is invalid before 1.26, capacity < 0 from 1.26
    too_big = inv.capacity < 0 if version.at_least(26) else inv.capacity <= 0
    if too_big:
        which = "greater than" if version.at_least(26) else "greater than or equal to"
        raise bad_request(f"Unable to {action} inventory for resource provider {uuid}: "
                          f"Invalid inventory for '{rc}' on resource provider '{uuid}'. "
                          f"The reserved value is {which} total.")
    return inv


def inventories_body(p: Provider, invs: dict[str, Inventory]) -> dict[str, Any]:
    return {"resource_provider_generation": p.generation,
            "inventories": {rc: inv.fields() for rc, inv in invs.items()}}


def one_body(p: Provider, inv: Inventory) -> dict[str, Any]:
    return {**inv.fields(), "resource_provider_generation": p.generation}


async def get_inventories(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:inventories:list")
    uuid = path_uuid(ctx)

    def run(tx: Tx) -> tuple[Provider, dict[str, Inventory]]:
        return sp.require_provider(tx, uuid), tx.inventories(uuid)

    p, invs = await app.store.read(run)
    return Reply(200, inventories_body(p, invs), last_modified=p.updated_at)


async def set_inventories(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:inventories:update")
    uuid = path_uuid(ctx)

    def run(tx: Tx) -> tuple[Provider, dict[str, Inventory]]:
        sp.require_provider(tx, uuid)
        data = ctx.json(PUT_ALL_SCHEMA)
        invs = {rc: make_inventory(uuid, rc, d, ctx.version)
                for rc, d in data["inventories"].items()}
        p = sp.set_inventories(tx, uuid, data["resource_provider_generation"], invs)
        return p, tx.inventories(uuid)

    p, invs = await app.store.write(run)
    return Reply(200, inventories_body(p, invs), last_modified=p.updated_at)


async def delete_inventories(app: PlacementApp, ctx: Ctx) -> Reply:
    if not ctx.version.at_least(5):
        err = PlacementError(405, "The method specified is not allowed for this resource.")
        err.headers = [("allow", "GET, POST, PUT")]  # type: ignore[attr-defined]
        raise err
    app.enforce(ctx, "placement:resource_providers:inventories:delete")
    uuid = path_uuid(ctx)
    await app.store.write(lambda tx: sp.set_inventories(tx, uuid, None, {}))
    return Reply(204)


async def create_inventory(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:inventories:create")
    uuid = path_uuid(ctx)

    def run(tx: Tx) -> tuple[Provider, Inventory]:
        sp.require_provider(tx, uuid)
        data = ctx.json(POST_SCHEMA)
        rc = data["resource_class"]
        inv = make_inventory(uuid, rc, data, ctx.version, action="create")
        if not sp.class_exists(tx, rc):
            raise bad_request(f"Unable to create inventory for resource provider {uuid}: "
                              f"No such resource class {rc}.")
        if rc in tx.inventories(uuid):
            raise PlacementError(409, f"Update conflict: Inventory for '{rc}' on resource "
                                 f"provider '{uuid}' already exists.", CONCURRENT_UPDATE)
        p = sp.set_inventories(tx, uuid, None, {rc: inv}, replace=False)
        return p, inv

    p, inv = await app.store.write(run)
    return Reply(201, one_body(p, inv),
                 [("location", f"/resource_providers/{uuid}/inventories/{rc_of(inv)}")],
                 last_modified=p.updated_at)


def rc_of(inv: Inventory) -> str:
    return inv.resource_class


async def get_inventory(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:inventories:show")
    uuid = path_uuid(ctx)
    rc = ctx.params["rc"]

    def run(tx: Tx) -> tuple[Provider, Inventory]:
        p = sp.require_provider(tx, uuid)
        inv = tx.inventories(uuid).get(rc)
        if inv is None:
            raise not_found(f"No inventory of class {rc} for {uuid}")
        return p, inv

    p, inv = await app.store.read(run)
    return Reply(200, one_body(p, inv), last_modified=p.updated_at)


async def update_inventory(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:inventories:update")
    uuid = path_uuid(ctx)
    rc = ctx.params["rc"]

    def run(tx: Tx) -> tuple[Provider, Inventory]:
        sp.check_generation(sp.require_provider(tx, uuid),
                            (data := ctx.json(BASE_SCHEMA))["resource_provider_generation"])
        inv = make_inventory(uuid, rc, data, ctx.version)
        if rc not in tx.inventories(uuid):
            raise bad_request(f"No inventory record with resource class for resource provider "
                              f"{uuid}: No inventory of class {rc} found for update.")
        p = sp.set_inventories(tx, uuid, data["resource_provider_generation"], {rc: inv},
                               replace=False)
        return p, inv

    p, inv = await app.store.write(run)
    return Reply(200, one_body(p, inv), last_modified=p.updated_at)


async def delete_inventory(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:inventories:delete")
    uuid = path_uuid(ctx)
    rc = ctx.params["rc"]
    await app.store.write(lambda tx: sp.delete_inventory(tx, uuid, rc))
    return Reply(204)


async def get_usages(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:usages")
    uuid = path_uuid(ctx)

    def run(tx: Tx) -> tuple[Provider, dict[str, int]]:
        return sp.require_provider(tx, uuid), provider_usages(tx, uuid)

    p, used = await app.store.read(run)
    return Reply(200, {"resource_provider_generation": p.generation, "usages": used})
