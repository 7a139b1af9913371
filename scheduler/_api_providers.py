"""Handlers: /resource_providers[/{uuid}] and /resource_providers/{uuid}/aggregates.

Microversions: POST returns the provider (200) from 1.20, before that 201
with no body; parent/root fields and ``in_tree`` from 1.14; list filters
``member_of`` 1.3 (repeatable 1.24, ``!`` 1.32), ``resources`` 1.4,
``required`` 1.18 (``!`` 1.22, ``in:`` and repeatable 1.39); un- and
re-parenting from 1.37; aggregates from 1.1, with generation from 1.19.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import _store_providers as sp
from ._api_common import Ctx, Reply, links, normalize_uuid, require_version, validate
from ._api_query import (
    AggregateFilter,
    TraitFilter,
    parse_member_of,
    parse_required,
    parse_resources,
)
from ._store_records import Provider, bad_request, not_found
from ._store_txn import Tx
from .microversion import Version

if TYPE_CHECKING:
    from .placement_api import PlacementApp

_UUID_OR_NULL = {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}
POST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 200},
                   "uuid": {"type": "string", "format": "uuid"}},
    "required": ["name"], "additionalProperties": False,
}
PUT_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"name": {"type": "string", "maxLength": 200}},
    "required": ["name"], "additionalProperties": False,
}


def _with_parent(schema: dict[str, Any], version: Version) -> dict[str, Any]:
    if not version.at_least(14):
        return schema
    schema = copy.deepcopy(schema)
    schema["properties"]["parent_provider_uuid"] = _UUID_OR_NULL
    return schema


def provider_body(p: Provider, version: Version) -> dict[str, Any]:
    prefix = f"/resource_providers/{p.uuid}"
    rels = [("self", ""), ("inventories", "/inventories"), ("usages", "/usages")]
    if version.at_least(1):
        rels.append(("aggregates", "/aggregates"))
    if version.at_least(6):
        rels.append(("traits", "/traits"))
    if version.at_least(11):
        rels.append(("allocations", "/allocations"))
    body: dict[str, Any] = {"uuid": p.uuid, "name": p.name, "generation": p.generation,
                            "links": links(prefix, *rels)}
    if version.at_least(14):
        body["parent_provider_uuid"] = p.parent_uuid
        body["root_provider_uuid"] = p.root_uuid
    return body


def path_uuid(ctx: Ctx) -> str:
    """The provider uuid from the path, normalised; unknown shapes simply 404."""
    raw = ctx.params["uuid"]
    try:
        return normalize_uuid(raw)
    except ValueError:
        return raw


async def create_provider(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:create")
    data = ctx.json(_with_parent(POST_SCHEMA, ctx.version))
    uuid = normalize_uuid(data["uuid"]) if data.get("uuid") else None
    parent = data.get("parent_provider_uuid")
    parent = normalize_uuid(parent) if parent else None
    p = await app.store.write(lambda tx: sp.create_provider(tx, uuid, data["name"], parent))
    location = [("location", f"/resource_providers/{p.uuid}")]
    if ctx.version.at_least(20):
        return Reply(200, provider_body(p, ctx.version), location, last_modified=p.updated_at)
    return Reply(201, None, location)


async def get_provider(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:show")
    uuid = path_uuid(ctx)
    p = await app.store.read(lambda tx: sp.require_provider(tx, uuid))
    return Reply(200, provider_body(p, ctx.version), last_modified=p.updated_at)


async def update_provider(app: PlacementApp, ctx: Ctx) -> Reply:
    ctx.require_json_content()  # 415 before 404 (basic-http.yaml)
    app.enforce(ctx, "placement:resource_providers:update")
    uuid = path_uuid(ctx)
    await app.store.read(lambda tx: sp.require_provider(tx, uuid))  # 404 before 400
    data = ctx.json(_with_parent(PUT_SCHEMA, ctx.version))
    parent: object = sp.UNSET
    if "parent_provider_uuid" in data:
        parent = data["parent_provider_uuid"]
        parent = normalize_uuid(parent) if isinstance(parent, str) else None
    p = await app.store.write(lambda tx: sp.update_provider(
        tx, uuid, data["name"], parent, allow_reparent=ctx.version.at_least(37)))
    return Reply(200, provider_body(p, ctx.version), last_modified=p.updated_at)


async def delete_provider(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:delete")
    uuid = path_uuid(ctx)
    await app.store.write(lambda tx: sp.delete_provider(tx, uuid))
    return Reply(204)


def _list_schema(version: Version) -> dict[str, Any]:
    props: dict[str, Any] = {"name": {"type": "string"},
                             "uuid": {"type": "string", "format": "uuid"}}
    if version.at_least(3):
        props["member_of"] = {"type": "string"}
    if version.at_least(4):
        props["resources"] = {"type": "string"}
    if version.at_least(14):
        props["in_tree"] = {"type": "string", "format": "uuid"}
    if version.at_least(18):
        props["required"] = {"type": "string"}
    return {"type": "object", "properties": props, "additionalProperties": False}


def _as_list(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


async def list_providers(app: PlacementApp, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:resource_providers:list")
    v = ctx.version
    q = ctx.query(frozenset({"member_of", "required"}))
    validate({k: (val[-1] if isinstance(val, list) else val) for k, val in q.items()},
             _list_schema(v), query=True)
    member_of = parse_member_of(_as_list(q["member_of"]), v) if "member_of" in q else None
    required = parse_required(_as_list(q["required"]), v) if "required" in q else None
    resources = parse_resources(q["resources"]) if "resources" in q else None
    uuid = normalize_uuid(q["uuid"]) if "uuid" in q else None
    in_tree = normalize_uuid(q["in_tree"]) if "in_tree" in q else None

    def run(tx: Tx) -> list[Provider]:
        if required is not None:
            missing = sorted(t for t in required.names() if not sp.trait_exists(tx, t))
            if missing:
                raise bad_request('Invalid trait(s) in "required" parameter: '
                                  f"No such trait(s): {', '.join(missing)}.")
        if resources is not None:
            for rc in resources:
                if not sp.class_exists(tx, rc):
                    raise bad_request(f"Invalid resource class in resources parameter: "
                                      f"No such resource class {rc}.")
        root = None
        if in_tree is not None:
            tree = tx.provider(in_tree)
            if tree is None:
                return []
            root = tree.root_uuid
        out = []
        for p in tx.providers():
            if uuid is not None and p.uuid != uuid:
                continue
            if "name" in q and p.name != q["name"]:
                continue
            if root is not None and p.root_uuid != root:
                continue
            if not _matches(tx, p, member_of, required, resources):
                continue
            out.append(p)
        return out

    providers = await app.store.read(run)
    return Reply(200, {"resource_providers": [provider_body(p, v) for p in providers]})


def _matches(tx: Tx, p: Provider, member_of: AggregateFilter | None,
             required: TraitFilter | None, resources: dict[str, int] | None) -> bool:
    if member_of is not None and not member_of.matches(frozenset(tx.provider_aggregates(p.uuid))):
        return False
    if required is not None and not required.matches(frozenset(tx.provider_traits(p.uuid))):
        return False
    if resources:
        invs = tx.inventories(p.uuid)
        used = tx.usages(p.uuid)
        for rc, amount in resources.items():
            inv = invs.get(rc)
            if inv is None or not inv.allows(amount) or used.get(rc, 0) + amount > inv.capacity:
                return False
    return True


# -- aggregates ----------------------------------------------------------------
AGG_LIST = {"type": "array", "items": {"type": "string", "format": "uuid"}, "uniqueItems": True}
AGG_PUT_119 = {"type": "object",
               "properties": {"aggregates": AGG_LIST,
                              "resource_provider_generation": {"type": "integer"}},
               "required": ["aggregates", "resource_provider_generation"],
               "additionalProperties": False}


def _agg_body(p: Provider, aggs: list[str], version: Version) -> dict[str, Any]:
    body: dict[str, Any] = {"aggregates": list(aggs)}
    if version.at_least(19):
        body["resource_provider_generation"] = p.generation
    return body


async def get_aggregates(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 1)
    app.enforce(ctx, "placement:resource_providers:aggregates:list")
    uuid = path_uuid(ctx)

    def run(tx: Tx) -> tuple[Provider, list[str]]:
        return sp.require_provider(tx, uuid), tx.provider_aggregates(uuid)

    p, aggs = await app.store.read(run)
    return Reply(200, _agg_body(p, aggs, ctx.version))


async def set_aggregates(app: PlacementApp, ctx: Ctx) -> Reply:
    ctx.require_json_content()  # 415 before the version check and 404, as Placement
    require_version(ctx, 1)
    app.enforce(ctx, "placement:resource_providers:aggregates:update")
    uuid = path_uuid(ctx)
    v = ctx.version
    await app.store.read(lambda tx: sp.require_provider(tx, uuid))  # 404 before 400
    generation: int | None = None
    if v.at_least(19):
        data = ctx.json(AGG_PUT_119)
        aggs, generation = data["aggregates"], data["resource_provider_generation"]
    else:
        aggs = ctx.json(AGG_LIST)
    aggs = [normalize_uuid(a) for a in aggs]

    def run(tx: Tx) -> Provider:
        if tx.provider(uuid) is None:
            raise not_found(f"No resource provider with uuid {uuid} found")
        return sp.set_provider_aggregates(tx, uuid, generation, aggs, bump=v.at_least(19))

    p = await app.store.write(run)
    return Reply(200, _agg_body(p, aggs, v))
