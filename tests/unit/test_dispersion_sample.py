"""The dispersion sample is a pure function of the ring: every sampled
partition gets the first name hashing into it, so two runs (populate, then
report) agree without storing the names anywhere."""

from __future__ import annotations

from replicator.dispersion import names_for, sample_partitions
from ring.hashing import hash_seed, name_path, partition_of_path


def test_sample_partitions_by_coverage() -> None:
    assert sample_partitions(64, None) == list(range(64))
    assert sample_partitions(1 << 16, None) == list(range(0, 1 << 16, 100))
    assert sample_partitions(100, 10.0) == list(range(0, 100, 10))
    assert sample_partitions(8, 1000.0) == list(range(8))


def test_names_cover_every_sampled_partition_deterministically() -> None:
    seed = hash_seed("secret")

    def part_of(name: str) -> int:
        return partition_of_path(name_path(".dispersion", "dispersion_objects", name), 8, seed)

    names = names_for(range(256), part_of)
    assert sorted(names) == list(range(256))
    assert all(part_of(n) == p for p, n in names.items())
    assert names_for(range(256), part_of) == names
    # the smallest k wins: no smaller number hashes into the same partition
    for p, n in list(names.items())[:20]:
        k = int(n.rsplit("_", 1)[1])
        assert all(part_of(f"dispersion_{j}") != p for j in range(k))
