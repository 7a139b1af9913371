"""ring: inventory, builder, ring files and lookups (see DESIGN.md, "Rings").

Re-exports the package's public names. Everything but the hashing functions
is imported on first use: a storage node that only needs ``ring.hashing``
never pays for numpy, and servers that only look names up never load the
builder.
"""

from __future__ import annotations

import importlib
from typing import Any

from ring.hashing import (
    BadName,
    get_partition,
    hash_seed,
    name_path,
    object_hash,
    partition_of_path,
    suffix_of,
)

_LAZY = {
    "Ring": "ring.lookup",
    "FORMAT_VERSION": "ring.ringfile",
    "RingData": "ring.ringfile",
    "RingDevice": "ring.ringfile",
    "RingFileError": "ring.ringfile",
    "read_ring": "ring.ringfile",
    "write_ring": "ring.ringfile",
    "RebalanceReport": "ring.builder",
    "RingBuilder": "ring.builder",
    "RingValidationError": "ring.builder",
    "RING_NAMES": "ring.builderfile",
    "BuilderFileError": "ring.builderfile",
    "ClusterBuilder": "ring.builderfile",
    "Change": "ring.inventory",
    "Drive": "ring.inventory",
    "Host": "ring.inventory",
    "Inventory": "ring.inventory",
    "InventoryError": "ring.inventory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ring' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BadName",
    "get_partition",
    "hash_seed",
    "name_path",
    "object_hash",
    "partition_of_path",
    "suffix_of",
    *_LAZY,
]
