"""ring: inventory, builder, ring files and lookups (see DESIGN.md, "Rings").

Re-exports the package's public names.
"""

from ring.builder import RebalanceReport, RingBuilder, RingValidationError
from ring.builderfile import RING_NAMES, BuilderFileError, ClusterBuilder
from ring.hashing import (
    BadName,
    get_partition,
    hash_seed,
    name_path,
    object_hash,
    partition_of_path,
    suffix_of,
)
from ring.inventory import Change, Drive, Host, Inventory, InventoryError
from ring.lookup import Ring
from ring.ringfile import FORMAT_VERSION, RingData, RingDevice, RingFileError, read_ring, write_ring

__all__ = [
    "FORMAT_VERSION",
    "RING_NAMES",
    "BadName",
    "BuilderFileError",
    "Change",
    "ClusterBuilder",
    "Drive",
    "Host",
    "Inventory",
    "InventoryError",
    "RebalanceReport",
    "Ring",
    "RingBuilder",
    "RingData",
    "RingDevice",
    "RingFileError",
    "RingValidationError",
    "get_partition",
    "hash_seed",
    "name_path",
    "object_hash",
    "partition_of_path",
    "read_ring",
    "suffix_of",
    "write_ring",
]
