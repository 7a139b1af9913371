"""Placement filtering and weighing kernels: pure numpy twins + selection.

Three kernels, each with a Cython version in ``_native/placement.pyx`` that
must give the same answer bit for bit (``tests/unit/test_placement_native_twin``):

- ``resource_fit``: per provider and requested resource class, does one
  allocation of ``amount`` fit? Placement's rule (research_context
  ``_capacity_check_clause``): ``used + amount <= (total - reserved) *
  allocation_ratio`` (compared as floats, like the SQL), ``min_unit <= amount
  <= max_unit`` and ``amount % step_size == 0``. A provider without that
  inventory has ``capacity = -1`` and ``max_unit = 0`` and never fits.
- ``bits_match``: per provider, a bitset row (traits or aggregates) meets
  every any-of mask (AND of ORs) and none of the forbidden bits.
- ``weigh``: Nova's weigher sum: each column min-max normalised to [0, 1]
  over the hosts (all equal -> 0), times its multiplier, summed.

Selection: the kernels from ``_native.placement`` unless
``RINGSTACK_PUREPYTHON=1`` or the extension is missing (one warning line).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U64 = npt.NDArray[np.uint64]
U8 = npt.NDArray[np.uint8]


def resource_fit_py(capacity: F64, used: I64, min_unit: I64, max_unit: I64, step: I64,
                    cols: I64, amounts: I64) -> U8:
    """uint8[P, k]: 1 where ``amounts[j]`` of class column ``cols[j]`` fits."""
    n = capacity.shape[0]
    out = np.zeros((n, len(cols)), dtype=np.uint8)
    for j in range(len(cols)):
        c, a = int(cols[j]), int(amounts[j])
        st = step[:, c]
        ok = ((used[:, c] + a).astype(np.float64) <= capacity[:, c]) \
            & (min_unit[:, c] <= a) & (max_unit[:, c] >= a) & (st > 0)
        ok &= np.where(st > 0, a % np.maximum(st, 1), 1) == 0
        out[:, j] = ok
    return out


def bits_match_py(bits: U64, any_masks: U64, forbid: U64) -> U8:
    """uint8[P]: row overlaps every row of ``any_masks`` and no bit of ``forbid``."""
    n = bits.shape[0]
    ok = np.ones(n, dtype=bool)
    for m in range(any_masks.shape[0]):
        ok &= (bits & any_masks[m]).any(axis=1)
    if forbid.shape[0]:
        ok &= ~(bits & forbid).any(axis=1)
    return ok.astype(np.uint8)


def weigh_py(values: F64, multipliers: F64) -> F64:
    """float64[H]: sum over columns of multiplier * min-max-normalised value."""
    h, k = values.shape
    out = np.zeros(h, dtype=np.float64)
    for j in range(k):
        col = values[:, j]
        if h == 0:
            break
        lo, hi = float(col.min()), float(col.max())
        if hi > lo:
            out += multipliers[j] * ((col - lo) / (hi - lo))
    return out


_warned = False


def _select() -> tuple[Any, Any, Any, bool]:
    global _warned
    if os.environ.get("RINGSTACK_PUREPYTHON", "") not in ("", "0"):
        return resource_fit_py, bits_match_py, weigh_py, False
    try:
        from _native import placement as native
    except ImportError:
        if not _warned:
            _warned = True
            print("ringstack: _native.placement not built; using the numpy placement twins",
                  file=sys.stderr)
        return resource_fit_py, bits_match_py, weigh_py, False
    return native.resource_fit, native.bits_match, native.weigh, True


resource_fit, bits_match, weigh, NATIVE = _select()
