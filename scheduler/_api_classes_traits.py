"""Handlers: /resource_classes, /traits and /resource_providers/{uuid}/traits.

Resource classes from 1.2 (PUT renames up to 1.6; from 1.7 PUT is
create-or-confirm with no body: 201 / 204). Traits from 1.6 (404 before).
Standard classes and traits come from ``os_resource_classes`` /
``os_traits`` and cannot be changed or deleted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import _store_providers as sp
from ._api_common import Ctx, Reply, links, require_version, validate
from ._api_providers import path_uuid
from ._store_records import Provider, bad_request, not_found
from ._store_txn import Tx

if TYPE_CHECKING:
    from .placement_api import PlacementApp

CUSTOM_PATTERN = "^CUSTOM_[A-Z0-9_]+$"
CLASS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string", "pattern": CUSTOM_PATTERN, "maxLength": 255}},
    "required": ["name"], "additionalProperties": False,
}
TRAIT_RE = re.compile(r"^CUSTOM_[A-Z0-9_]+$")
INVALID_TRAIT = ('The trait is invalid. A valid trait must be no longer than 255 characters, '
                 'start with the prefix "CUSTOM_" and use following characters: "A"-"Z", '
                 '"0"-"9" and "_"')


def _class_body(name: str) -> dict[str, Any]:
    return {"name": name, "links": links(f"/resource_classes/{name}", ("self", ""))}


async def list_classes(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 2)
    app.enforce(ctx, "placement:resource_classes:list")
    custom = await app.store.read(sp.custom_classes)
    names = [*sp.STANDARD_CLASSES, *custom]
    return Reply(200, {"resource_classes": [_class_body(n) for n in names]})


async def create_class(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 2)
    app.enforce(ctx, "placement:resource_classes:create")
    name = ctx.json(CLASS_SCHEMA)["name"]
    await app.store.write(lambda tx: sp.create_class(tx, name))
    return Reply(201, None, [("location", f"/resource_classes/{name}")])


async def get_class(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 2)
    app.enforce(ctx, "placement:resource_classes:show")
    name = ctx.params["name"]
    if not await app.store.read(lambda tx: sp.class_exists(tx, name)):
        raise not_found(f"No such resource class {name}.")
    return Reply(200, _class_body(name))


async def put_class(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 2)
    app.enforce(ctx, "placement:resource_classes:update")
    name = ctx.params["name"]
    if ctx.version.at_least(7):
        validate({"name": name}, CLASS_SCHEMA)
        created = await app.store.write(lambda tx: sp.create_class(tx, name, exist_ok=True))
        return Reply(201 if created else 204, None,
                     [("location", f"/resource_classes/{name}")], cache=False)
    new = ctx.json(CLASS_SCHEMA)["name"]
    await app.store.write(lambda tx: sp.rename_class(tx, name, new))
    return Reply(200, _class_body(new))


async def delete_class(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 2)
    app.enforce(ctx, "placement:resource_classes:delete")
    name = ctx.params["name"]
    await app.store.write(lambda tx: sp.delete_class(tx, name))
    return Reply(204)


# -- traits --------------------------------------------------------------------
TRAITS_QUERY = {"type": "object",
                "properties": {"name": {"type": "string"}, "associated": {"type": "string"}},
                "additionalProperties": False}


async def list_traits(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 6)
    app.enforce(ctx, "placement:traits:list")
    q = ctx.query()
    validate(q, TRAITS_QUERY, query=True)
    names_in: set[str] | None = None
    prefix: str | None = None
    if "name" in q:
        value = q["name"]
        if value.startswith("in:"):
            names_in = set(value[3:].split(","))
        elif value.startswith("startswith:"):
            prefix = value[len("startswith:"):]
        else:
            raise bad_request("Badly formatted name parameter. Expected name query string "
                              "parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. "
                              f'Got: "{value}"')
    associated: bool | None = None
    if "associated" in q:
        if q["associated"] not in ("true", "false"):
            raise bad_request('The query parameter "associated" only accepts "true" or "false"')
        associated = q["associated"] == "true"

    def run(tx: Tx) -> list[str]:
        names = set(sp.STANDARD_TRAITS) | set(tx.keys("traits"))
        if associated is not None:
            used: set[str] = set()
            for _, traits in tx.items("ptraits"):
                used.update(traits)
            names = names & used if associated else names - used
        if names_in is not None:
            names &= names_in
        if prefix is not None:
            names = {n for n in names if n.startswith(prefix)}
        return sorted(names)

    return Reply(200, {"traits": await app.store.read(run)})


async def put_trait(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 6)
    app.enforce(ctx, "placement:traits:update")
    name = ctx.params["name"]
    if not TRAIT_RE.match(name) or len(name) > 255:
        raise bad_request(INVALID_TRAIT)
    created = await app.store.write(lambda tx: sp.create_trait(tx, name))
    return Reply(201 if created else 204, None, [("location", f"/traits/{name}")], cache=True)


async def get_trait(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 6)
    app.enforce(ctx, "placement:traits:show")
    name = ctx.params["name"]
    if not await app.store.read(lambda tx: sp.trait_exists(tx, name)):
        raise not_found(f"No such trait(s): {name}")
    return Reply(204, None, cache=True)


async def delete_trait(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 6)
    app.enforce(ctx, "placement:traits:delete")
    name = ctx.params["name"]
    await app.store.write(lambda tx: sp.delete_trait(tx, name))
    return Reply(204)


PROVIDER_TRAITS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "traits": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z0-9_]+$",
                                              "maxLength": 255}},
        "resource_provider_generation": {"type": "integer"},
    },
    "required": ["traits", "resource_provider_generation"],
    "additionalProperties": False,
}


def _ptraits_body(p: Provider, traits: list[str]) -> dict[str, Any]:
    return {"traits": sorted(traits), "resource_provider_generation": p.generation}


async def get_provider_traits(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 6)
    app.enforce(ctx, "placement:resource_providers:traits:list")
    uuid = path_uuid(ctx)

    def run(tx: Tx) -> tuple[Provider, list[str]]:
        return sp.require_provider(tx, uuid), tx.provider_traits(uuid)

    p, traits = await app.store.read(run)
    return Reply(200, _ptraits_body(p, traits))


async def set_provider_traits(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 6)
    app.enforce(ctx, "placement:resource_providers:traits:update")
    uuid = path_uuid(ctx)
    data = ctx.json(PROVIDER_TRAITS_SCHEMA)
    traits = list(dict.fromkeys(data["traits"]))
    p = await app.store.write(lambda tx: sp.set_provider_traits(
        tx, uuid, data["resource_provider_generation"], traits))
    return Reply(200, _ptraits_body(p, traits))


async def delete_provider_traits(app: PlacementApp, ctx: Ctx) -> Reply:
    require_version(ctx, 6)
    app.enforce(ctx, "placement:resource_providers:traits:delete")
    uuid = path_uuid(ctx)
    await app.store.write(lambda tx: sp.set_provider_traits(tx, uuid, None, []))
    return Reply(204)
