"""Kernel == twin == ``ring.hashing``: hypothesis over names, seeds and tables."""

from __future__ import annotations

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from ring import _lookup_twins as twin
from ring.hashing import name_path, partition_of_path
from ring.lookup import _fallback_path

native = pytest.importorskip("_native.lookup", reason="native kernels not built")

seeds = st.integers(min_value=0, max_value=2**64 - 1)
part_powers = st.integers(min_value=0, max_value=32)
texts = st.text(max_size=80)  # includes lone surrogates, astral chars, empty
segment = st.one_of(texts, st.text(alphabet="abc/", max_size=5))
names = st.one_of(
    st.binary(max_size=300),
    texts,
    st.tuples(segment),
    st.tuples(segment, segment),
    st.tuples(segment, segment, segment),
    st.tuples(segment, st.none(), st.none()),
    st.tuples(segment, segment, st.none()),
)


def reference(item: object) -> bytes:
    if isinstance(item, tuple):
        return name_path(*item)
    if isinstance(item, str):
        return item.encode("utf-8", "surrogatepass")
    assert isinstance(item, bytes)
    return item


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), seed=seeds)
def test_xxh64_matches_library(data: bytes, seed: int) -> None:
    assert native.xxh64(data, seed) == xxhash.xxh64_intdigest(data, seed)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 65, 1000, 100_000])
def test_xxh64_lengths(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    for seed in (0, 1, 2**63, 2**64 - 1):
        assert native.xxh64(data[:size], seed) == xxhash.xxh64_intdigest(data[:size], seed)


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(names, max_size=40), part_power=part_powers, seed=seeds)
def test_partitions_kernel_twin_hashing(batch: list[object], part_power: int, seed: int) -> None:
    expected = [partition_of_path(reference(item), part_power, seed) for item in batch]
    got_native = native.partitions_bulk(batch, part_power, seed, _fallback_path)
    got_twin = twin.partitions_bulk(batch, part_power, seed, _fallback_path)
    assert got_native.tolist() == got_twin.tolist() == expected


def test_partitions_bad_input_same_error() -> None:
    for impl in (native, twin):
        with pytest.raises(ValueError):
            impl.partitions_bulk([b"x"], 33, 0, _fallback_path)
        with pytest.raises(TypeError):
            impl.partitions_bulk([3.5], 8, 0, _fallback_path)


@st.composite
def tables(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    ndev = draw(st.integers(1, 24))
    part_power = draw(st.integers(0, 7))
    replicas = draw(st.integers(1, 4))
    parts = 1 << part_power
    values = draw(st.lists(st.integers(-1, ndev - 1), min_size=replicas * parts, max_size=replicas * parts))
    table = np.array(values, dtype=np.int32).reshape(replicas, parts)
    region = np.array(draw(st.lists(st.integers(0, 2), min_size=ndev, max_size=ndev)), dtype=np.int32)
    zone = region * 3 + np.array(draw(st.lists(st.integers(0, 2), min_size=ndev, max_size=ndev)), dtype=np.int32)
    host = zone * 4 + np.array(draw(st.lists(st.integers(0, 3), min_size=ndev, max_size=ndev)), dtype=np.int32)
    part = draw(st.integers(0, parts - 1))
    start = draw(st.integers(0, parts - 1))
    inc = draw(st.sampled_from([1, 2, 4]))
    return table, region, zone, host, part, start, inc


@settings(max_examples=300, deadline=None)
@given(case=tables())
def test_handoff_order_kernel_equals_twin(case: tuple) -> None:
    table, region, zone, host, part, start, inc = case
    candidates = np.unique(table[table >= 0]).astype(np.int32)
    got_native = native.handoff_order(table, region, zone, host, candidates, part, start, inc)
    got_twin = twin.handoff_order(table, region, zone, host, candidates, part, start, inc)
    assert got_native.tolist() == got_twin.tolist()
    primaries = set(table[:, part].tolist())
    out = got_native.tolist()
    assert len(out) == len(set(out))
    assert not primaries & set(out)
    assert set(out) | (primaries - {-1}) == set(candidates.tolist())


@settings(max_examples=100, deadline=None)
@given(case=tables(), data=st.data())
def test_primaries_kernel_equals_twin(case: tuple, data: st.DataObject) -> None:
    table = case[0]
    parts = np.array(data.draw(st.lists(st.integers(0, table.shape[1] - 1), max_size=50)), dtype=np.int64)
    got_native = native.primaries_bulk(table, parts)
    got_twin = twin.primaries_bulk(table, parts)
    assert got_native.shape == got_twin.shape == (len(parts), table.shape[0])
    assert (got_native == got_twin).all()
    for impl in (native, twin):
        with pytest.raises(IndexError):
            impl.primaries_bulk(table, np.array([table.shape[1]], dtype=np.int64))
