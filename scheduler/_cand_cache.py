"""Provider arrays per store version, with a cheap path when only usages moved.

Every claim bumps the store version, and a full rebuild of 10,000 providers
(decode every table, build the arrays) costs over a second. So each rebuild
reads, in one read transaction: the version, a fingerprint of everything
but usages and generations (provider tree, inventories, traits, aggregates,
custom classes and traits) and the usages. Same fingerprint as the cached
arrays: copy them with a new ``used`` matrix (tens of milliseconds). Else:
full rebuild. One transaction, so fingerprint, usages and rows always belong
to the same committed state.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import numpy as np
import trio
import xxhash

from ._cand_arrays import ProviderArrays, build_arrays

_STRUCTURE = ("inventories", "ptraits", "aggregates", "classes", "traits")
_cache: dict[int, ProviderArrays] = {}
_locks: dict[int, trio.Lock] = {}


_VOLATILE = re.compile(rb'"generation":-?[0-9]+|"u":[-+0-9.eE]+')


def _fingerprint(tx: Any) -> int:
    h = xxhash.xxh3_64()
    rows = b"\n".join(k + b"=" + v for k, v in tx.txn.cursor(db=tx.dbs["providers"]))
    h.update(_VOLATILE.sub(b"", rows))  # not generations / update times: claims bump them
    for table in _STRUCTURE:
        for key, value in tx.txn.cursor(db=tx.dbs[table]):
            h.update(key)
            h.update(b"=")
            h.update(value)
            h.update(b"\n")
        h.update(b"#")
    return h.intdigest()


def _names(tx: Any) -> tuple[dict[str, int], list[str]]:
    classes = {name: int(row.get("id", 0)) for name, row in tx.items("classes")}
    return classes, list(tx.keys("traits"))


def _with_usages(old: ProviderArrays, version: int, usages: dict[str, Any]) -> ProviderArrays:
    used = np.zeros_like(old.used)
    for uuid, row in usages.items():
        i = old.index.get(uuid)
        if i is None:
            continue
        for rc, n in row.items():
            j = old.rc_index.get(rc)
            if j is not None:
                used[i, j] = n
    return dataclasses.replace(old, version=version, used=used, cache={})


def _read(tx: Any, cached: ProviderArrays | None) -> ProviderArrays:
    from .store import _collect

    version = tx.counter("version")
    fp = _fingerprint(tx)
    if cached is not None and cached.fingerprint == fp:
        pairs = list(tx.txn.cursor(db=tx.dbs["usages"]))
        values = json.loads(b"[" + b",".join(v for _, v in pairs) + b"]")  # one C call
        usages = {k.decode(): v for (k, _), v in zip(pairs, values, strict=True)}
        return _with_usages(cached, version, usages)
    classes, traits = _names(tx)
    arrays = build_arrays(version, _collect(tx), classes, traits)
    arrays.fingerprint = fp
    return arrays


async def arrays_for(store: Any) -> ProviderArrays:
    """The provider arrays at the store's current version."""
    key = id(store)
    version = await store.version()
    cached = _cache.get(key)
    if cached is not None and cached.version == version:
        return cached
    async with _locks.setdefault(key, trio.Lock()):
        cached = _cache.get(key)
        if cached is not None and cached.version >= version:
            return cached
        arrays: ProviderArrays = await trio.to_thread.run_sync(
            store.read_sync, lambda tx: _read(tx, cached))
        _cache[key] = arrays
        return arrays
