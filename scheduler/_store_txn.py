"""Typed access to the placement LMDB tables inside one transaction.

Tables (named LMDB databases; keys UTF-8, values JSON):

=============  ==========================  =====================================
table          key                         value
=============  ==========================  =====================================
providers      provider uuid               {name, generation, parent, root, c, u}
names          provider name               provider uuid
inventories    provider uuid               {class: {total, reserved, ...}}
usages         provider uuid               {class: used}   (derived, kept in step)
ptraits        provider uuid               [trait, ...]
aggregates     provider uuid               [aggregate uuid, ...]
classes        custom class name           {id, c, u}
traits         custom trait name           {c}
consumers      consumer uuid               {project, user, generation, type,
                                            allocs: {provider: {class: n}}, c, u}
meta           version, class_seq,         integer
               provider_seq
=============  ==========================  =====================================

Standard resource classes and traits are not stored: they come from
``os_resource_classes`` / ``os_traits`` at import time.

A ``Tx`` is used by one thread at a time; it never commits (the store does).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, cast

import lmdb

from ._store_records import Consumer, Inventory, Provider

PROVIDER_TABLES = frozenset({"providers", "inventories", "usages", "ptraits", "aggregates"})
TABLES = ("providers", "names", "inventories", "usages", "ptraits", "aggregates",
          "classes", "traits", "consumers", "meta")


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class Tx:
    """One LMDB transaction plus the table handles; ``now`` is fixed per txn."""

    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, Any]) -> None:
        self.txn = txn
        self.dbs = dbs
        self.now = time.time()
        self.touched: set[str] = set()  # providers whose snapshot state changed

    # -- raw JSON rows -------------------------------------------------------
    def get(self, table: str, key: str) -> Any:
        raw = self.txn.get(key.encode(), db=self.dbs[table])
        return None if raw is None else json.loads(cast(bytes, raw))

    def put(self, table: str, key: str, value: Any) -> None:
        if table in PROVIDER_TABLES:
            self.touched.add(key)
        self.txn.put(key.encode(), _dump(value), db=self.dbs[table])

    def delete(self, table: str, key: str) -> None:
        if table in PROVIDER_TABLES:
            self.touched.add(key)
        self.txn.delete(key.encode(), db=self.dbs[table])

    def items(self, table: str) -> Iterator[tuple[str, Any]]:
        for key, raw in self.txn.cursor(db=self.dbs[table]):
            yield cast(bytes, key).decode(), json.loads(cast(bytes, raw))

    def keys(self, table: str) -> Iterator[str]:
        for key in self.txn.cursor(db=self.dbs[table]).iternext(keys=True, values=False):
            yield cast(bytes, key).decode()

    def counter(self, name: str) -> int:
        raw = self.txn.get(name.encode(), db=self.dbs["meta"])
        return 0 if raw is None else int(raw)

    def bump_counter(self, name: str) -> int:
        value = self.counter(name) + 1
        self.txn.put(name.encode(), str(value).encode(), db=self.dbs["meta"])
        return value

    # -- providers -----------------------------------------------------------
    def provider(self, uuid: str) -> Provider | None:
        row = self.get("providers", uuid)
        return None if row is None else _provider(uuid, row)

    def providers_unordered(self) -> Iterator[Provider]:
        """Every provider in key order (cheaper: for scans that need no order)."""
        for uuid, row in self.items("providers"):
            yield _provider(uuid, row)

    def providers(self) -> Iterator[Provider]:
        """Every provider in creation order (as Placement lists them, by id)."""
        rows = sorted(self.items("providers"), key=lambda kv: kv[1].get("id", 0))
        for uuid, row in rows:
            yield _provider(uuid, row)

    def put_provider(self, p: Provider) -> None:
        old = self.get("providers", p.uuid)
        seq = old["id"] if old and "id" in old else self.bump_counter("provider_seq")
        self.put("providers", p.uuid, {
            "id": seq, "name": p.name, "generation": p.generation, "parent": p.parent_uuid,
            "root": p.root_uuid, "c": p.created_at, "u": p.updated_at})

    def bump_generation(self, uuid: str) -> int:
        row = self.get("providers", uuid)
        row["generation"] += 1
        row["u"] = self.now
        self.put("providers", uuid, row)
        return int(row["generation"])

    # -- inventories and usages ---------------------------------------------
    def inventories(self, uuid: str) -> dict[str, Inventory]:
        row = self.get("inventories", uuid) or {}
        return {rc: Inventory(rc, **fields) for rc, fields in row.items()}

    def put_inventories(self, uuid: str, invs: dict[str, Inventory]) -> None:
        if not invs:
            self.delete("inventories", uuid)
            return
        self.put("inventories", uuid, {rc: inv.fields() for rc, inv in invs.items()})

    def usages(self, uuid: str) -> dict[str, int]:
        return dict(self.get("usages", uuid) or {})

    def add_usage(self, uuid: str, delta: dict[str, int]) -> None:
        used = self.usages(uuid)
        for rc, amount in delta.items():
            value = used.get(rc, 0) + amount
            if value:
                used[rc] = value
            else:
                used.pop(rc, None)
        if used:
            self.put("usages", uuid, used)
        else:
            self.delete("usages", uuid)

    # -- traits and aggregates of a provider --------------------------------
    def provider_traits(self, uuid: str) -> list[str]:
        return list(self.get("ptraits", uuid) or [])

    def provider_aggregates(self, uuid: str) -> list[str]:
        return list(self.get("aggregates", uuid) or [])

    def put_list(self, table: str, uuid: str, values: list[str]) -> None:
        if values:
            self.put(table, uuid, list(dict.fromkeys(values)))  # request order, no repeats
        else:
            self.delete(table, uuid)

    # -- consumers -----------------------------------------------------------
    def consumer(self, uuid: str) -> Consumer | None:
        row = self.get("consumers", uuid)
        return None if row is None else _consumer(uuid, row)

    def consumers(self) -> Iterator[Consumer]:
        for uuid, row in self.items("consumers"):
            yield _consumer(uuid, row)

    def put_consumer(self, c: Consumer) -> None:
        self.put("consumers", c.uuid, {
            "project": c.project_id, "user": c.user_id, "generation": c.generation,
            "type": c.consumer_type,
            "allocs": {rp: dict(res) for rp, res in c.allocations.items()},
            "u": c.updated_at})


def _provider(uuid: str, row: dict[str, Any]) -> Provider:
    return Provider(uuid, row["name"], row["generation"], row["parent"], row["root"],
                    row.get("c", 0.0), row.get("u", 0.0))


def _consumer(uuid: str, row: dict[str, Any]) -> Consumer:
    return Consumer(uuid, row["project"], row["user"], row["generation"], row.get("type"),
                    row["allocs"], row.get("u", 0.0))
