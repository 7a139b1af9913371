"""Store rules for consumers, allocations, usages and the reshaper.

A claim is atomic because it runs inside one LMDB write transaction and LMDB
admits one writer at a time: the capacity check and the usage update see the
same committed state, so no interleaving of claims can oversubscribe an
inventory (invariant 7). The check, per (provider, class) in the request:

    usage without this consumer's old allocations + amount
        <= int((total - reserved) * allocation_ratio)
    and min_unit <= amount <= max_unit and amount % step_size == 0

Generations, as Placement's ``replace_all``: a new consumer starts at 0 and
every allocation write adds 1; one write (PUT, or a whole POST /allocations
batch) bumps once every provider named in the new allocations, plus those
held by consumers it empties; DELETE /allocations bumps none. A consumer
left with no allocations is deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._store_providers import check_generation, class_exists, set_inventories
from ._store_records import (
    CONCURRENT_UPDATE,
    INCOMPLETE_CONSUMER_ID,
    RESOURCE_PROVIDER_NOT_FOUND,
    Consumer,
    ConsumerWrite,
    Inventory,
    bad_request,
    conflict,
    not_found,
)
from ._store_txn import Tx


def _check_consumer(tx: Tx, w: ConsumerWrite) -> Consumer | None:
    current = tx.consumer(w.consumer_uuid)
    if not w.check_generation:
        return current
    if current is None:
        if w.consumer_generation is not None:
            raise conflict("consumer generation conflict - expected null but got "
                           f"{w.consumer_generation}", CONCURRENT_UPDATE)
    elif w.consumer_generation != current.generation:
        got = "None" if w.consumer_generation is None else w.consumer_generation
        raise conflict(f"consumer generation conflict - expected {current.generation} "
                       f"but got {got}", CONCURRENT_UPDATE)
    return current


def _validate(tx: Tx, w: ConsumerWrite) -> None:
    for rp, resources in w.allocations.items():
        if tx.provider(rp) is None:
            raise bad_request(f"Allocation for resource provider '{rp}' that does not exist.")
        for rc in resources:
            if not class_exists(tx, rc):
                raise bad_request(f"Unable to allocate inventory for consumer "
                                  f"{w.consumer_uuid}: No such resource class {rc}.")


def _release(tx: Tx, consumer: Consumer | None) -> None:
    if consumer is None:
        return
    for rp, resources in consumer.allocations.items():
        if tx.provider(rp) is not None:
            tx.add_usage(rp, {rc: -n for rc, n in resources.items()})


def _claim(tx: Tx, allocations: Mapping[str, Mapping[str, int]]) -> None:
    """Add ``allocations`` to usages, refusing anything over capacity."""
    for rp, resources in allocations.items():
        invs = tx.inventories(rp)
        used = tx.usages(rp)
        for rc, amount in resources.items():
            inv = invs.get(rc)
            if inv is None:
                raise conflict(f"Unable to allocate inventory: Inventory for '{rc}' on "
                               f"resource provider '{rp}' invalid.")
            if not inv.allows(amount):
                raise conflict(f"Unable to allocate inventory: Unable to create allocation "
                               f"for '{rc}' on resource provider '{rp}'. The requested amount "
                               "would violate inventory constraints.")
            if used.get(rc, 0) + amount > inv.capacity:  # invariant 7
                raise conflict(f"Unable to allocate inventory: Unable to create allocation "
                               f"for '{rc}' on resource provider '{rp}'. The requested amount "
                               "would exceed the capacity.")
        tx.add_usage(rp, dict(resources))


def _store_consumer(tx: Tx, w: ConsumerWrite, current: Consumer | None) -> None:
    allocations = {rp: dict(res) for rp, res in w.allocations.items() if res}
    if not allocations:
        tx.delete("consumers", w.consumer_uuid)
        return
    project = w.project_id or (current.project_id if current else INCOMPLETE_CONSUMER_ID)
    user = w.user_id or (current.user_id if current else INCOMPLETE_CONSUMER_ID)
    ctype = w.consumer_type or (current.consumer_type if current else None)
    generation = (current.generation if current else 0) + 1
    tx.put_consumer(Consumer(w.consumer_uuid, project, user, generation, ctype,
                             allocations, tx.now))


def _replace_all(tx: Tx, writes: list[ConsumerWrite],
                 currents: list[Consumer | None]) -> None:
    """Placement's ``replace_all``: release, claim, then bump once every
    provider named in new allocations and, for consumers whose allocations
    are wiped (empty), every provider they held."""
    for current in currents:
        _release(tx, current)
    visited: dict[str, None] = {}
    for w, current in zip(writes, currents, strict=True):
        if any(w.allocations.values()):
            _claim(tx, w.allocations)
            visited.update(dict.fromkeys(rp for rp, res in w.allocations.items() if res))
        elif current is not None:
            visited.update(dict.fromkeys(current.allocations))
        _store_consumer(tx, w, current)
    for rp in visited:
        if tx.provider(rp) is not None:
            tx.bump_generation(rp)


def replace_allocations(tx: Tx, writes: Iterable[ConsumerWrite]) -> None:
    """Replace the allocations of every consumer in ``writes``, all or nothing."""
    writes = list(writes)
    currents = [_check_consumer(tx, w) for w in writes]
    for w in writes:
        _validate(tx, w)
    _replace_all(tx, writes, currents)


def delete_allocations(tx: Tx, consumer_uuid: str) -> None:
    current = tx.consumer(consumer_uuid)
    if current is None:
        raise not_found(f"No allocations for consumer '{consumer_uuid}'")
    _release(tx, current)
    tx.delete("consumers", consumer_uuid)


def reshape(tx: Tx, inventories: Mapping[str, tuple[int, dict[str, Inventory]]],
            writes: Iterable[ConsumerWrite]) -> None:
    """Move inventory and allocations in one step (microversion 1.30), as
    Placement does: set an interim inventory (old classes plus the new ones)
    on every provider given a non-empty one, replace the allocations, then set
    the final inventories (refused if a removed class is still in use)."""
    writes = list(writes)
    for rp, (generation, _) in inventories.items():
        p = tx.provider(rp)
        if p is None:
            raise bad_request(f"Resource provider {rp} in inventories not found",
                              RESOURCE_PROVIDER_NOT_FOUND)
        check_generation(p, generation)
    currents = [_check_consumer(tx, w) for w in writes]
    for rp, (_, invs) in inventories.items():
        if invs:
            set_inventories(tx, rp, None, {**tx.inventories(rp), **invs})
    for w in writes:
        _validate(tx, w)
    _replace_all(tx, writes, currents)
    for rp, (_, invs) in inventories.items():
        set_inventories(tx, rp, None, invs)


# -- reads ---------------------------------------------------------------------
def provider_usages(tx: Tx, uuid: str) -> dict[str, int]:
    """Usage of every class the provider has inventory of (0 when unused)."""
    used = tx.usages(uuid)
    out = {rc: used.get(rc, 0) for rc in tx.inventories(uuid)}
    out.update(used)
    return out


def provider_allocations(tx: Tx, uuid: str) -> dict[str, dict[str, int]]:
    return {c.uuid: dict(c.allocations[uuid]) for c in tx.consumers() if uuid in c.allocations}


def project_usages(tx: Tx, project_id: str, user_id: str | None,
                   consumer_type: str | None, by_type: bool) -> dict[str, dict[str, int]]:
    """``{type or "all": {class: used, "consumer_count": n}}``; the type key
    is the consumer type, ``unknown`` for none, or ``all`` for everything."""
    groups: dict[str, dict[str, int]] = {}
    for c in tx.consumers():
        if c.project_id != project_id or (user_id is not None and c.user_id != user_id):
            continue
        ctype = c.consumer_type or "unknown"
        if consumer_type not in (None, "all") and ctype != consumer_type:
            continue
        key = "all" if (consumer_type == "all" or not by_type) else ctype
        group = groups.setdefault(key, {"consumer_count": 0})
        group["consumer_count"] += 1
        for resources in c.allocations.values():
            for rc, n in resources.items():
                group[rc] = group.get(rc, 0) + n
    return groups
