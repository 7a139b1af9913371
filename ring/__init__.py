"""ring: inventory, builder, ring files and lookups (see DESIGN.md, "Rings").

Re-exports the package's public names. The builder side (inventory, builder,
builder file) is imported on first use, so servers that only look names up
never load it, and a builder mid-rebuild cannot break lookups.
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
from ring.lookup import Ring
from ring.ringfile import FORMAT_VERSION, RingData, RingDevice, RingFileError, read_ring, write_ring

_LAZY = {
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
    "FORMAT_VERSION",
    "BadName",
    "Ring",
    "RingData",
    "RingDevice",
    "RingFileError",
    "get_partition",
    "hash_seed",
    "name_path",
    "object_hash",
    "partition_of_path",
    "read_ring",
    "suffix_of",
    "write_ring",
    *_LAZY,
]
