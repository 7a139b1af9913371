"""Where a name lives: partition hashing and on-disk object hashes.

- The partition of ``/account[/container[/object]]`` is the top ``part_power``
  bits of a 64-bit XXH64 of the UTF-8 path, seeded with a per-cluster key
  derived from the cluster's hash secret (DESIGN, "Rings"). Without the secret
  nobody can aim names at one partition.
- The on-disk name of an object is a keyed BLAKE3 of the same path (32 hex
  chars); its last three hex chars are the suffix directory, as in Swift.

Pure functions: no I/O, no clock. The bulk form lives in ``ring.lookup`` and
``_native``.
"""

from __future__ import annotations

from functools import lru_cache

import blake3
import xxhash


class BadName(ValueError):
    """An account/container/object triple that cannot be hashed."""

    status = 400


@lru_cache(maxsize=64)
def hash_seed(hash_secret: str) -> int:
    """The 64-bit XXH64 seed for a cluster secret."""
    return int.from_bytes(blake3.blake3(b"ringstack-partition:" + hash_secret.encode()).digest()[:8], "little")


@lru_cache(maxsize=64)
def _object_key(hash_secret: str) -> bytes:
    return blake3.blake3(b"ringstack-object:" + hash_secret.encode()).digest()


def name_path(account: str, container: str | None = None, obj: str | None = None) -> bytes:
    """``/account[/container[/object]]`` as UTF-8 bytes (the hashed form)."""
    if obj is not None and container is None:
        raise BadName("an object needs a container")
    parts = ["", account]
    if container is not None:
        parts.append(container)
        if obj is not None:
            parts.append(obj)
    return "/".join(parts).encode("utf-8", "surrogatepass")


def partition_of_path(path: bytes, part_power: int, seed: int) -> int:
    """Top ``part_power`` bits of XXH64(path, seed)."""
    if part_power == 0:
        return 0
    return xxhash.xxh64_intdigest(path, seed) >> (64 - part_power)


def get_partition(
    hash_secret: str, part_power: int, account: str, container: str | None = None, obj: str | None = None
) -> int:
    return partition_of_path(name_path(account, container, obj), part_power, hash_seed(hash_secret))


def object_hash(hash_secret: str, account: str, container: str | None = None, obj: str | None = None) -> str:
    """32 hex chars naming the object's (container's, account's) directory on disk."""
    path = name_path(account, container, obj)
    return blake3.blake3(path, key=_object_key(hash_secret)).hexdigest(16)


def suffix_of(name_hash: str) -> str:
    """The suffix directory: the last three hex chars of the hash."""
    return name_hash[-3:]
