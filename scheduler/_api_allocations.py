"""Handlers: /allocations[/{consumer}], /resource_providers/{uuid}/allocations,
/usages and /reshaper.

Body shapes by microversion (PUT /allocations/{consumer}): a list of
``{resource_provider: {uuid}, resources}`` before 1.12, a dict keyed by
provider uuid from 1.12; ``project_id``/``user_id`` required from 1.8;
``consumer_generation`` required from 1.28 (and ``allocations: {}`` then
removes them); ``mappings`` accepted from 1.34; ``consumer_type`` required
from 1.38. ``POST /allocations`` (1.13) writes many consumers atomically;
``POST /reshaper`` (1.30) moves inventories and allocations in one step.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import _store_allocations as sa
from ._api_common import Ctx, Reply, is_uuid, normalize_uuid, require_version, validate
from ._api_inventories import RECORD_SCHEMA, make_inventory
from ._api_providers import path_uuid
from ._store_records import (
    INCOMPLETE_CONSUMER_ID,
    ConsumerWrite,
    Inventory,
    Provider,
    bad_request,
    not_found,
)
from ._store_txn import Tx
from .microversion import Version

if TYPE_CHECKING:
    from .placement_api import PlacementApp

UUID_KEY = "^[0-9a-fA-F-]{32,36}$"
RESOURCES = {"type": "object", "minProperties": 1,
             "patternProperties": {"^[0-9A-Z_]+$": {"type": "integer", "minimum": 1}},
             "additionalProperties": False}
LIST_ALLOCS = {"type": "array", "minItems": 1, "items": {
    "type": "object",
    "properties": {"resource_provider": {"type": "object",
                                         "properties": {"uuid": {"type": "string",
                                                                 "format": "uuid"}},
                                         "required": ["uuid"], "additionalProperties": False},
                   "resources": RESOURCES},
    "required": ["resource_provider", "resources"], "additionalProperties": False}}
_ID = {"type": "string", "minLength": 1, "maxLength": 255}
MAPPINGS = {"type": "object", "minProperties": 1, "patternProperties": {"^[a-zA-Z0-9_-]{0,64}$": {
    "type": "array", "minItems": 1, "uniqueItems": True,
    "items": {"type": "string", "format": "uuid"}}}, "additionalProperties": False}


def _dict_allocs(version: Version) -> dict[str, Any]:
    return {"type": "object", "minProperties": 0 if version.at_least(28) else 1,
            "patternProperties": {UUID_KEY: {
                "type": "object",
                "properties": {"generation": {"type": "integer"}, "resources": RESOURCES},
                "required": ["resources"], "additionalProperties": False}},
            "additionalProperties": False}


def consumer_schema(version: Version, *, post: bool = False) -> dict[str, Any]:
    """Schema of one consumer's allocation body at ``version``."""
    props: dict[str, Any] = {}
    required = ["allocations"]
    props["allocations"] = _dict_allocs(version) if version.at_least(12) else LIST_ALLOCS
    if post:
        props["allocations"] = copy.deepcopy(props["allocations"])
        props["allocations"]["minProperties"] = 0
    if version.at_least(8):
        props["project_id"] = props["user_id"] = _ID
        required += ["project_id", "user_id"]
    if version.at_least(28):
        props["consumer_generation"] = {"type": ["integer", "null"]}
        required.append("consumer_generation")
    if version.at_least(34):
        props["mappings"] = MAPPINGS
    if version.at_least(38):
        props["consumer_type"] = {"type": "string", "pattern": "^[A-Z0-9_]+$",
                                  "maxLength": 255}
        required.append("consumer_type")
    return {"type": "object", "properties": props, "required": required,
            "additionalProperties": False}


def post_schema(version: Version) -> dict[str, Any]:
    return {"type": "object", "minProperties": 1,
            "patternProperties": {UUID_KEY: consumer_schema(version, post=True)},
            "additionalProperties": False}


def _consumer_uuid(value: str) -> str:
    if not is_uuid(value):
        raise bad_request(f"Malformed consumer_uuid: {value}")
    return normalize_uuid(value)


def _normalized(value: str) -> str:
    """Reads do not validate consumer ids (Placement answers empty / 404)."""
    return normalize_uuid(value) if is_uuid(value) else value


def to_write(consumer: str, data: dict[str, Any], version: Version) -> ConsumerWrite:
    """A validated body -> the store's ``ConsumerWrite``."""
    raw = data["allocations"]
    allocs: dict[str, dict[str, int]] = {}
    if isinstance(raw, list):
        for item in raw:
            rp = normalize_uuid(item["resource_provider"]["uuid"])
            allocs.setdefault(rp, {}).update(item["resources"])
    else:
        for rp, item in raw.items():
            try:
                allocs[normalize_uuid(rp)] = dict(item["resources"])
            except ValueError:
                raise bad_request(f"Malformed resource provider uuid: {rp}") from None
    project, user = data.get("project_id"), data.get("user_id")
    if project is None:  # before 1.8: Placement's "incomplete consumer" placeholders
        project = user = INCOMPLETE_CONSUMER_ID
    return ConsumerWrite(
        consumer, allocs, project, user,
        data.get("consumer_generation"), check_generation=version.at_least(28),
        consumer_type=data.get("consumer_type"))


async def put_allocations(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:allocations:update")
    consumer = _consumer_uuid(ctx.params["consumer"])
    data = ctx.json(consumer_schema(ctx.version))
    write = to_write(consumer, data, ctx.version)
    await app.store.write(lambda tx: sa.replace_allocations(tx, [write]))
    return Reply(204)


async def post_allocations(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 13)
    app.enforce(ctx, "placement:allocations:manage")
    data = ctx.json(post_schema(ctx.version))
    writes = [to_write(_consumer_uuid(c), body, ctx.version) for c, body in data.items()]
    await app.store.write(lambda tx: sa.replace_allocations(tx, writes))
    return Reply(204)


async def get_allocations(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:allocations:list")
    consumer = _normalized(ctx.params["consumer"])
    v = ctx.version

    def run(tx: Tx) -> dict[str, Any]:
        c = tx.consumer(consumer)
        body: dict[str, Any] = {"allocations": {}}
        if c is None:
            return body
        for rp, resources in c.allocations.items():
            p = tx.provider(rp)
            body["allocations"][rp] = {"generation": p.generation if p else None,
                                       "resources": dict(resources)}
        if v.at_least(12):
            body["project_id"], body["user_id"] = c.project_id, c.user_id
        if v.at_least(28):
            body["consumer_generation"] = c.generation
        if v.at_least(38):
            body["consumer_type"] = c.consumer_type or "unknown"
        return body

    return Reply(200, await app.store.read(run))


async def delete_allocations(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:allocations:delete")
    consumer = _normalized(ctx.params["consumer"])
    await app.store.write(lambda tx: sa.delete_allocations(tx, consumer))
    return Reply(204)


async def provider_allocations(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:allocations:list")
    uuid = path_uuid(ctx)

    def run(tx: Tx) -> tuple[Provider, dict[str, dict[str, Any]]]:
        p = tx.provider(uuid)
        if p is None:
            raise not_found(f"Resource provider '{uuid}' not found: No resource provider "
                            f"with uuid {uuid} found")
        out: dict[str, dict[str, Any]] = {}
        for c in tx.consumers():
            if uuid in c.allocations:
                out[c.uuid] = {"resources": dict(c.allocations[uuid])}
                if ctx.version.at_least(28):
                    out[c.uuid]["consumer_generation"] = c.generation
        return p, out

    p, allocs = await app.store.read(run)
    return Reply(200, {"resource_provider_generation": p.generation, "allocations": allocs})


async def project_usages(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 9)
    v = ctx.version
    q = ctx.query()
    props: dict[str, Any] = {"project_id": _ID, "user_id": _ID}
    if v.at_least(38):
        props["consumer_type"] = {"type": "string"}
    validate(q, {"type": "object", "properties": props, "required": ["project_id"],
                 "additionalProperties": False}, query=True)
    app.enforce(ctx, "placement:usages", target_project=q["project_id"])
    by_type = v.at_least(38)
    groups = await app.store.read(lambda tx: sa.project_usages(
        tx, q["project_id"], q.get("user_id"), q.get("consumer_type"), by_type))
    if by_type:
        return Reply(200, {"usages": groups})
    flat = groups.get("all", {})
    flat.pop("consumer_count", None)
    return Reply(200, {"usages": flat})


def _reshape_schema(version: Version) -> dict[str, Any]:
    inventories = {"type": "object", "patternProperties": {UUID_KEY: {
        "type": "object",
        "properties": {"resource_provider_generation": {"type": "integer"},
                       "inventories": {"type": "object",
                                       "patternProperties": {"^[A-Z0-9_]+$": RECORD_SCHEMA},
                                       "additionalProperties": False}},
        "required": ["resource_provider_generation", "inventories"],
        "additionalProperties": False}}, "additionalProperties": False}
    allocations = post_schema(version)
    allocations["minProperties"] = 0
    return {"type": "object", "properties": {"inventories": inventories,
                                             "allocations": allocations},
            "required": ["inventories", "allocations"], "additionalProperties": False}


async def reshape(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 30)
    app.enforce(ctx, "placement:reshaper:reshape")
    v = ctx.version
    data = ctx.json(_reshape_schema(v))
    invs: dict[str, tuple[int, dict[str, Inventory]]] = {}
    for rp, body in data["inventories"].items():
        rp_uuid = normalize_uuid(rp)
        invs[rp_uuid] = (body["resource_provider_generation"],
                         {rc: make_inventory(rp_uuid, rc, d, v)
                          for rc, d in body["inventories"].items()})
    writes = [to_write(_consumer_uuid(c), body, v) for c, body in data["allocations"].items()]
    await app.store.write(lambda tx: sa.reshape(tx, invs, writes))
    return Reply(204)
