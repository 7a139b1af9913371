"""Keep the inventory's hosts in step with their resource providers (store side).

One write transaction per sync: each host becomes (or stays) a root provider
named after it, uuid ``host_provider_uuid(name)``, with VCPU / MEMORY_MB /
DISK_GB inventories from its declared capacity, the traits
``CUSTOM_REGION_R<r>`` and ``CUSTOM_ZONE_Z<z>`` (other traits it carries are
kept) and the region and zone aggregates. Nothing is written for a host that
already matches, so a no-op sync does not bump generations. A host that left
the inventory loses its provider when nothing is allocated on it; otherwise
it is reported as ``kept`` (the shell disables it and evacuates it).

Allocation ratios: VCPU 4.0 (Nova's initial_cpu_allocation_ratio), memory and
disk 1.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._nova_core import HostSpec, host_provider_uuid, host_traits, region_aggregate, zone_aggregate
from ._store_providers import (
    create_provider,
    create_trait,
    delete_provider,
    set_inventories,
    set_provider_aggregates,
    set_provider_traits,
)
from ._store_records import Inventory, PlacementError
from ._store_txn import Tx

RATIOS = {"VCPU": 4.0, "MEMORY_MB": 1.0, "DISK_GB": 1.0}
_OWN_PREFIXES = ("CUSTOM_REGION_R", "CUSTOM_ZONE_Z")


def sync_hosts(tx: Tx, wanted: Iterable[HostSpec], managed: Iterable[str]) -> dict[str, Any]:
    """Apply ``wanted``; ``managed``: host names synced before. Returns a report."""
    report: dict[str, list[str]] = {"added": [], "updated": [], "removed": [], "kept": [],
                                    "errors": []}
    wanted = list(wanted)
    names = {h.name for h in wanted}
    for h in wanted:
        uuid = host_provider_uuid(h.name)
        p = tx.provider(uuid)
        changed = False
        if p is None:
            try:
                create_provider(tx, uuid, h.name, None)
            except PlacementError as exc:  # the name is taken by a foreign provider
                report["errors"].append(f"{h.name}: {exc.detail}")
                continue
            report["added"].append(h.name)
        invs = {rc: Inventory(rc, total, allocation_ratio=RATIOS[rc])
                for rc, total in h.inventories().items()}
        if tx.inventories(uuid) != invs:
            try:
                set_inventories(tx, uuid, None, invs, replace=True)
                changed = True
            except PlacementError as exc:  # a class in use cannot go: keep the old one
                report["errors"].append(f"{h.name}: {exc.detail}")
        own = host_traits(h.region, h.zone)
        for t in own:
            create_trait(tx, t)
        current = tx.provider_traits(uuid)
        traits = sorted({t for t in current if not t.startswith(_OWN_PREFIXES)} | set(own))
        if sorted(current) != traits:
            set_provider_traits(tx, uuid, None, traits)
            changed = True
        aggs = sorted({region_aggregate(h.region), zone_aggregate(h.region, h.zone)})
        if sorted(tx.provider_aggregates(uuid)) != aggs:
            set_provider_aggregates(tx, uuid, None, aggs, bump=True)
            changed = True
        if changed and p is not None:
            report["updated"].append(h.name)
    for name in sorted(set(managed) - names):
        uuid = host_provider_uuid(name)
        if tx.provider(uuid) is None:
            continue
        if tx.usages(uuid):
            report["kept"].append(name)
            continue
        delete_provider(tx, uuid)
        report["removed"].append(name)
    return report


def hosts_from_builder(path: str) -> list[HostSpec]:
    """The hosts of a cluster builder file (``ring.builderfile``)."""
    from ring.builderfile import ClusterBuilder

    inv = ClusterBuilder.load(path).inventory
    return [HostSpec(h.name, h.region, h.zone, h.address, h.port, h.vcpus, h.memory_mb,
                     h.disk_gb) for h in inv.hosts.values()]
