# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Placement kernels: one pass over providers in C.

Twins (the specification): ``scheduler/_cand_kernels.py``. Same results bit
for bit; see that module for the rules.
"""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t, uint8_t

cnp.import_array()


def resource_fit(const double[:, :] capacity, const int64_t[:, :] used,
                 const int64_t[:, :] min_unit, const int64_t[:, :] max_unit,
                 const int64_t[:, :] step, const int64_t[:] cols,
                 const int64_t[:] amounts):
    cdef Py_ssize_t n = capacity.shape[0], k = cols.shape[0], i, j
    cdef int64_t c, a, st
    out = np.zeros((n, k), dtype=np.uint8)
    cdef uint8_t[:, :] o = out
    with nogil:
        for j in range(k):
            c = cols[j]
            a = amounts[j]
            for i in range(n):
                st = step[i, c]
                if st <= 0:
                    continue
                if <double>(used[i, c] + a) <= capacity[i, c] and min_unit[i, c] <= a \
                        and max_unit[i, c] >= a and a % st == 0:
                    o[i, j] = 1
    return out


def bits_match(const uint64_t[:, :] bits, const uint64_t[:, :] any_masks,
               const uint64_t[:] forbid):
    cdef Py_ssize_t n = bits.shape[0], w = bits.shape[1], m = any_masks.shape[0]
    cdef Py_ssize_t fw = forbid.shape[0], i, s, b
    cdef bint ok, hit
    out = np.zeros(n, dtype=np.uint8)
    cdef uint8_t[:] o = out
    with nogil:
        for i in range(n):
            ok = True
            for b in range(fw):
                if bits[i, b] & forbid[b]:
                    ok = False
                    break
            if ok:
                for s in range(m):
                    hit = False
                    for b in range(w):
                        if bits[i, b] & any_masks[s, b]:
                            hit = True
                            break
                    if not hit:
                        ok = False
                        break
            o[i] = ok
    return out


def weigh(const double[:, :] values, const double[:] multipliers):
    cdef Py_ssize_t h = values.shape[0], k = values.shape[1], i, j
    cdef double lo, hi, span, mult
    out = np.zeros(h, dtype=np.float64)
    cdef double[:] o = out
    if h == 0:
        return out
    with nogil:
        for j in range(k):
            lo = values[0, j]
            hi = values[0, j]
            for i in range(1, h):
                if values[i, j] < lo:
                    lo = values[i, j]
                if values[i, j] > hi:
                    hi = values[i, j]
            if hi > lo:
                span = hi - lo
                mult = multipliers[j]
                for i in range(h):
                    o[i] += mult * ((values[i, j] - lo) / span)
    return out
