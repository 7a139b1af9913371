"""The placement kernels (``_native/placement.pyx``) equal their numpy twins
(``scheduler/_cand_kernels.py``), bit for bit, on arbitrary inputs.

With ``RINGSTACK_PUREPYTHON=1`` the selected kernels are the twins; the
native module is still compared when it is built.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scheduler import _cand_kernels as k

native = pytest.importorskip("_native.placement", reason="native kernels not built")

i64 = st.integers(-5, 40)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 30), st.integers(1, 4), st.data())
def test_resource_fit_twin(n, r, data):
    shape = (n, r)
    capacity = data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from(
        [-1.0, 0.0, 1.5, 3.0, 4.0, 7.5, 16.0, 64.0])))
    used = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 20)))
    min_unit = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 4)))
    max_unit = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 20)))
    step = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 4)))
    k_cols = data.draw(st.integers(0, 4))
    cols = np.array(data.draw(st.lists(st.integers(0, r - 1), min_size=k_cols, max_size=k_cols)),
                    dtype=np.int64)
    amounts = np.array(data.draw(st.lists(st.integers(1, 12), min_size=k_cols,
                                          max_size=k_cols)), dtype=np.int64)
    want = k.resource_fit_py(capacity, used, min_unit, max_unit, step, cols, amounts)
    got = native.resource_fit(capacity, used, min_unit, max_unit, step, cols, amounts)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 30), st.integers(1, 3), st.integers(0, 3), st.data())
def test_bits_match_twin(n, w, m, data):
    u64 = st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2, 4, 1 << 63])
    bits = data.draw(hnp.arrays(np.uint64, (n, w), elements=u64))
    any_masks = data.draw(hnp.arrays(np.uint64, (m, w), elements=u64))
    forbid = data.draw(hnp.arrays(np.uint64, (data.draw(st.sampled_from([0, w])),),
                                  elements=u64))
    want = k.bits_match_py(bits, any_masks, forbid)
    got = native.bits_match(bits, any_masks, forbid)
    assert np.array_equal(got, want)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 25), st.integers(1, 7), st.data())
def test_weigh_twin(h, c, data):
    values = data.draw(hnp.arrays(np.float64, (h, c), elements=st.floats(
        -1e6, 1e6, allow_nan=False, allow_infinity=False)))
    mult = data.draw(hnp.arrays(np.float64, (c,), elements=st.floats(-20, 20)))
    want = k.weigh_py(values, mult)
    got = native.weigh(values, mult)
    assert np.array_equal(got, want)


def test_selection_follows_environment():
    import os
    forced = os.environ.get("RINGSTACK_PUREPYTHON", "") not in ("", "0")
    assert k.NATIVE is (not forced)
    assert (k.resource_fit is k.resource_fit_py) is forced
