"""Store rules for providers, inventories, traits, aggregates and classes.

Every function here runs inside one LMDB write transaction (a ``Tx``) and
either completes or raises a ``PlacementError`` (the store then aborts the
nested transaction, so a refused request leaves no partial state,
invariant 5). Messages follow OpenStack Placement's wording, because clients
(nova's report client, conformance suites) match on them.
"""

from __future__ import annotations

import uuid as uuidlib

import os_resource_classes as orc
import os_traits

from ._store_records import (
    CONCURRENT_UPDATE,
    DUPLICATE_NAME,
    INVENTORY_INUSE,
    PROVIDER_CANNOT_DELETE_PARENT,
    PROVIDER_IN_USE,
    Consumer,
    Inventory,
    Provider,
    bad_request,
    conflict,
    not_found,
)
from ._store_txn import Tx

STANDARD_CLASSES: tuple[str, ...] = tuple(orc.STANDARDS)
STANDARD_TRAITS: frozenset[str] = frozenset(os_traits.get_traits())
UNSET = object()  # "field absent from the request"


def require_provider(tx: Tx, uuid: str) -> Provider:
    p = tx.provider(uuid)
    if p is None:
        raise not_found(f"No resource provider with uuid {uuid} found")
    return p


def check_generation(p: Provider, generation: int | None) -> None:
    if generation is not None and generation != p.generation:
        raise conflict(f"resource provider generation conflict - actual: {p.generation}, "
                       f"given: {generation}", CONCURRENT_UPDATE)


# -- providers -----------------------------------------------------------------
def create_provider(tx: Tx, uuid: str | None, name: str, parent: str | None) -> Provider:
    uuid = uuid or str(uuidlib.uuid4())
    if tx.provider(uuid) is not None:
        raise conflict(f"Conflicting resource provider uuid: {uuid} already exists")
    if tx.get("names", name) is not None:
        raise conflict(f"Conflicting resource provider name: {name} already exists",
                       DUPLICATE_NAME)
    root = uuid
    if parent is not None:
        prefix = f'Unable to create resource provider "{name}", {uuid}: '
        if parent == uuid:
            raise bad_request(prefix + "parent provider UUID cannot be same as UUID. "
                              "Please choose a different parent provider UUID.")
        pp = tx.provider(parent)
        if pp is None:
            raise bad_request(prefix + "parent provider UUID does not exist.")
        root = pp.root_uuid
    p = Provider(uuid, name, 0, parent, root, tx.now, tx.now)
    tx.put_provider(p)
    tx.put("names", name, uuid)
    return p


def update_provider(tx: Tx, uuid: str, name: str, parent: object = UNSET,
                    allow_reparent: bool = False) -> Provider:
    """Rename and/or (re-)parent. Un- and re-parenting need ``allow_reparent``
    (microversion 1.37); a parent change moves the whole subtree's root."""
    p = require_provider(tx, uuid)
    if name != p.name:
        owner = tx.get("names", name)
        if owner is not None and owner != uuid:
            raise conflict(f"Conflicting resource provider name: {name} already exists",
                           DUPLICATE_NAME)
        tx.delete("names", p.name)
        tx.put("names", name, uuid)
    new_parent = p.parent_uuid if parent is UNSET else parent
    root = p.root_uuid
    if new_parent != p.parent_uuid:
        prefix = f"Unable to save resource provider {uuid}: Object action update failed because: "
        if p.parent_uuid is not None and not allow_reparent:
            what = "un-parenting" if new_parent is None else "re-parenting"
            raise bad_request(prefix + f"{what} a provider is not currently allowed.")
        if new_parent is None:
            root = uuid
        else:
            assert isinstance(new_parent, str)
            pp = tx.provider(new_parent)
            if pp is None:
                raise bad_request(prefix + "parent provider UUID does not exist.")
            if new_parent == uuid or _in_subtree(tx, uuid, new_parent):
                raise bad_request(prefix + "creating loop in the provider tree is not allowed.")
            root = pp.root_uuid
    elif new_parent == uuid:
        raise bad_request(f"Unable to save resource provider {uuid}: Object action update "
                          "failed because: creating loop in the provider tree is not allowed.")
    updated = Provider(uuid, name, p.generation, new_parent if isinstance(new_parent, str)
                       else None, root, p.created_at, tx.now)
    tx.put_provider(updated)
    if root != p.root_uuid:
        for child in _descendants(tx, uuid):
            c = tx.provider(child)
            assert c is not None
            tx.put_provider(Provider(c.uuid, c.name, c.generation, c.parent_uuid, root,
                                     c.created_at, tx.now))
    return updated


def _descendants(tx: Tx, uuid: str) -> list[str]:
    children: dict[str, list[str]] = {}
    for p in tx.providers_unordered():
        if p.parent_uuid is not None:
            children.setdefault(p.parent_uuid, []).append(p.uuid)
    out, todo = [], [uuid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _in_subtree(tx: Tx, root: str, candidate: str) -> bool:
    return candidate in _descendants(tx, root)


def delete_provider(tx: Tx, uuid: str) -> None:
    p = tx.provider(uuid)
    if p is None:
        raise not_found(f"No resource provider with uuid {uuid} found for delete")
    if any(c.parent_uuid == uuid for c in tx.providers_unordered()):
        raise conflict(f"Unable to delete parent resource provider {uuid}: "
                       "It has child resource providers.", PROVIDER_CANNOT_DELETE_PARENT)
    if tx.usages(uuid):
        raise conflict(f"Unable to delete resource provider {uuid}: "
                       "Resource provider has allocations.", PROVIDER_IN_USE)
    for table in ("providers", "inventories", "usages", "ptraits", "aggregates"):
        tx.delete(table, uuid)
    tx.delete("names", p.name)


# -- inventories ---------------------------------------------------------------
def class_order(rc: str) -> tuple[int, str]:
    """Placement's id order: standard classes as listed, then custom ones."""
    try:
        return STANDARD_CLASSES.index(rc), ""
    except ValueError:
        return len(STANDARD_CLASSES), rc


def class_exists(tx: Tx, rc: str) -> bool:
    return rc in STANDARD_CLASSES or tx.get("classes", rc) is not None


def set_inventories(tx: Tx, uuid: str, generation: int | None,
                    invs: dict[str, Inventory], *, replace: bool = True) -> Provider:
    """Replace (or with ``replace=False`` merge) the provider's inventories.
    Removing a class that has usage is refused (409 inventory.inuse); lowering
    capacity below usage is allowed, as Placement does."""
    p = require_provider(tx, uuid)
    check_generation(p, generation)
    current = tx.inventories(uuid)
    for rc in invs:
        if not class_exists(tx, rc):
            raise bad_request(f"Unknown resource class in inventory for resource provider "
                              f"{uuid}: No such resource class {rc}.")
    new = dict(invs) if replace else {**current, **invs}
    removed = sorted(set(current) - set(new), key=class_order)
    used = tx.usages(uuid)
    in_use = [rc for rc in removed if used.get(rc)]
    if in_use:
        raise conflict(f"update conflict: Inventory for '{', '.join(in_use)}' on resource "
                       f"provider '{uuid}' in use.", INVENTORY_INUSE)
    tx.put_inventories(uuid, new)
    tx.bump_generation(uuid)
    return require_provider(tx, uuid)


def delete_inventory(tx: Tx, uuid: str, rc: str, generation: int | None = None) -> Provider:
    p = require_provider(tx, uuid)
    check_generation(p, generation)
    current = tx.inventories(uuid)
    if rc not in current:
        raise not_found(f"No inventory of class {rc} found for delete: No inventory of class "
                        f"{rc} found for delete")
    if tx.usages(uuid).get(rc):  # Placement answers this one with concurrent_update
        raise conflict(f"Unable to delete inventory of class {rc}: Inventory for '{rc}' on "
                       f"resource provider '{uuid}' in use.", CONCURRENT_UPDATE)
    del current[rc]
    tx.put_inventories(uuid, current)
    tx.bump_generation(uuid)
    return require_provider(tx, uuid)


# -- traits and aggregates -----------------------------------------------------
def trait_exists(tx: Tx, name: str) -> bool:
    return name in STANDARD_TRAITS or tx.get("traits", name) is not None


def set_provider_traits(tx: Tx, uuid: str, generation: int | None,
                        traits: list[str]) -> Provider:
    p = require_provider(tx, uuid)
    if generation is not None and generation != p.generation:
        raise conflict("Resource provider's generation already changed. Please update the "
                       "generation and try again.", CONCURRENT_UPDATE)
    missing = sorted(t for t in set(traits) if not trait_exists(tx, t))
    if missing:
        raise bad_request(f"No such trait {', '.join(missing)}")
    tx.put_list("ptraits", uuid, traits)
    tx.bump_generation(uuid)
    return require_provider(tx, uuid)


def set_provider_aggregates(tx: Tx, uuid: str, generation: int | None,
                            aggregates: list[str], bump: bool) -> Provider:
    p = require_provider(tx, uuid)
    if generation is not None and generation != p.generation:
        raise conflict("Resource provider's generation already changed. Please update the "
                       "generation and try again.", CONCURRENT_UPDATE)
    tx.put_list("aggregates", uuid, aggregates)
    if bump:
        tx.bump_generation(uuid)
    return require_provider(tx, uuid)


def create_trait(tx: Tx, name: str) -> bool:
    """True when created, False when it already existed."""
    if trait_exists(tx, name):
        return False
    tx.put("traits", name, {"c": tx.now})
    return True


def delete_trait(tx: Tx, name: str) -> None:
    if name in STANDARD_TRAITS:
        raise bad_request(f"Cannot delete standard trait {name}.")
    if tx.get("traits", name) is None:
        raise not_found(f"No such trait(s): {name}")
    if any(name in traits for _, traits in tx.items("ptraits")):
        raise conflict(f"The trait {name} is in use by a resource provider.")
    tx.delete("traits", name)


# -- resource classes ----------------------------------------------------------
def create_class(tx: Tx, name: str, exist_ok: bool = False) -> bool:
    if class_exists(tx, name):
        if exist_ok:
            return False
        raise conflict(f"Conflicting resource class already exists: {name}")
    tx.put("classes", name, {"id": tx.bump_counter("class_seq"), "c": tx.now, "u": tx.now})
    return True


def _class_in_use(tx: Tx, name: str) -> bool:
    return any(name in invs for _, invs in tx.items("inventories"))


def rename_class(tx: Tx, old: str, new: str) -> None:
    """Rename a custom class everywhere it is used (Placement keys rows by
    class id, so a rename there is invisible to inventories and allocations)."""
    if not class_exists(tx, old):
        raise not_found(f"No such resource class {old}.")
    if old in STANDARD_CLASSES:
        raise bad_request(f"Cannot update standard resource class {old}")
    if class_exists(tx, new):
        raise conflict(f"Resource class already exists: {new}")
    row = tx.get("classes", old)
    tx.delete("classes", old)
    row["u"] = tx.now
    tx.put("classes", new, row)
    for table in ("inventories", "usages"):
        for key, value in list(tx.items(table)):
            if old in value:
                value[new] = value.pop(old)
                tx.put(table, key, value)
    for c in list(tx.consumers()):
        if any(old in res for res in c.allocations.values()):
            allocs = {rp: {(new if rc == old else rc): n for rc, n in res.items()}
                      for rp, res in c.allocations.items()}
            tx.put_consumer(Consumer(c.uuid, c.project_id, c.user_id, c.generation,
                                     c.consumer_type, allocs, c.updated_at))


def delete_class(tx: Tx, name: str) -> None:
    if not class_exists(tx, name):
        raise not_found(f"No such resource class {name}.")
    if name in STANDARD_CLASSES:
        raise bad_request(f"Error in delete resource class: Cannot delete standard resource "
                          f"class {name}.")
    if _class_in_use(tx, name):
        raise conflict(f"Error in delete resource class: Cannot delete resource class {name}. "
                       "Class is in use in inventory.")
    tx.delete("classes", name)


def custom_classes(tx: Tx) -> list[str]:
    """Custom classes in creation order (Placement lists by id)."""
    rows = sorted(tx.items("classes"), key=lambda kv: kv[1]["id"])
    return [name for name, _ in rows]

