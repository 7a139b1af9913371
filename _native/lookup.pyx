# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Ring lookup kernels: bulk partition hashing, bulk primaries, handoff order.

Twins (pure Python/numpy, same results bit for bit) live in
``ring/_lookup_twins.py``; ``ring.lookup`` picks one. XXH64 is written here
from the public algorithm description (xxHash spec, "XXH64"): four
accumulators over 32-byte stripes, merge, tail, avalanche.
"""

import numpy as np
cimport numpy as cnp
from libc.stdint cimport uint64_t, uint32_t, uint8_t, int32_t, int64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, memset
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

cnp.import_array()

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL

cdef uint64_t P1 = 0x9E3779B185EBCA87ULL
cdef uint64_t P2 = 0xC2B2AE3D27D4EB4FULL
cdef uint64_t P3 = 0x165667B19E3779F9ULL
cdef uint64_t P4 = 0x85EBCA77C2B2AE63ULL
cdef uint64_t P5 = 0x27D4EB2F165667C5ULL


cdef inline uint64_t _rotl(uint64_t x, int r) noexcept nogil:
    return (x << r) | (x >> (64 - r))


cdef inline uint64_t _read64(const uint8_t* p) noexcept nogil:
    # explicit little-endian assembly: compilers turn it into one load on LE hosts
    return (<uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16) | (<uint64_t>p[3] << 24)
            | (<uint64_t>p[4] << 32) | (<uint64_t>p[5] << 40) | (<uint64_t>p[6] << 48) | (<uint64_t>p[7] << 56))


cdef inline uint64_t _read32(const uint8_t* p) noexcept nogil:
    return <uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16) | (<uint64_t>p[3] << 24)


cdef inline uint64_t _round(uint64_t acc, uint64_t lane) noexcept nogil:
    acc = acc + lane * P2
    acc = _rotl(acc, 31)
    return acc * P1


cdef inline uint64_t _merge(uint64_t acc, uint64_t v) noexcept nogil:
    acc = acc ^ _round(0, v)
    return acc * P1 + P4


cdef uint64_t _xxh64(const uint8_t* p, Py_ssize_t n, uint64_t seed) noexcept nogil:
    cdef const uint8_t* end = p + n
    cdef uint64_t v1, v2, v3, v4, acc
    if n >= 32:
        v1 = seed + P1 + P2
        v2 = seed + P2
        v3 = seed
        v4 = seed - P1
        while p + 32 <= end:
            v1 = _round(v1, _read64(p))
            v2 = _round(v2, _read64(p + 8))
            v3 = _round(v3, _read64(p + 16))
            v4 = _round(v4, _read64(p + 24))
            p += 32
        acc = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        acc = _merge(acc, v1)
        acc = _merge(acc, v2)
        acc = _merge(acc, v3)
        acc = _merge(acc, v4)
    else:
        acc = seed + P5
    acc = acc + <uint64_t>n
    while p + 8 <= end:
        acc = acc ^ _round(0, _read64(p))
        acc = _rotl(acc, 27) * P1 + P4
        p += 8
    if p + 4 <= end:
        acc = acc ^ (_read32(p) * P1)
        acc = _rotl(acc, 23) * P2 + P3
        p += 4
    while p < end:
        acc = acc ^ (<uint64_t>p[0] * P5)
        acc = _rotl(acc, 11) * P1
        p += 1
    acc = acc ^ (acc >> 33)
    acc = acc * P2
    acc = acc ^ (acc >> 29)
    acc = acc * P3
    acc = acc ^ (acc >> 32)
    return acc


def xxh64(data, seed=0):
    """XXH64 of a bytes-like object (the kernel's hash, exposed for tests)."""
    cdef const uint8_t[::1] view = memoryview(data).cast("B")
    cdef uint64_t s = <uint64_t>(int(seed) & 0xFFFFFFFFFFFFFFFF)
    if view.shape[0] == 0:
        return _xxh64(<const uint8_t*>b"", 0, s)
    return _xxh64(&view[0], view.shape[0], s)


cdef class _Buf:
    """A growable scratch buffer for joining ``/a/c/o`` without Python objects."""
    cdef char* data
    cdef Py_ssize_t cap

    def __cinit__(self):
        self.cap = 256
        self.data = <char*>malloc(self.cap)
        if self.data == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.data)

    cdef int reserve(self, Py_ssize_t n) except -1:
        cdef char* grown
        if n > self.cap:
            grown = <char*>realloc(self.data, n * 2)
            if grown == NULL:
                raise MemoryError()
            self.data = grown
            self.cap = n * 2
        return 0


cdef inline bint _utf8(object s, const char** out, Py_ssize_t* size):
    """UTF-8 of a str without copying; False when it needs the slow path."""
    try:
        out[0] = PyUnicode_AsUTF8AndSize(s, size)
    except UnicodeEncodeError:
        return False
    return True


cdef bint _join_tuple(tuple t, _Buf buf, Py_ssize_t* size):
    """``/a[/c[/o]]`` of a tuple of str/None into ``buf``; False -> slow path."""
    cdef Py_ssize_t n = len(t), total = 0, k, m
    cdef const char* parts[3]
    cdef Py_ssize_t lens[3]
    cdef Py_ssize_t count = 0
    cdef object item
    if n < 1 or n > 3:
        return False
    for k in range(n):
        item = t[k]
        if item is None:
            # trailing Nones only: (a, None, None) and (a, c, None)
            for m in range(k + 1, n):
                if t[m] is not None:
                    return False
            break
        if type(item) is not str:
            return False
        if not _utf8(item, &parts[count], &lens[count]):
            return False
        total += lens[count] + 1
        count += 1
    if count == 0:
        return False
    buf.reserve(total)
    total = 0
    for k in range(count):
        buf.data[total] = b"/"
        memcpy(buf.data + total + 1, parts[k], lens[k])
        total += lens[k] + 1
    size[0] = total
    return True


def partitions_bulk(list names, int part_power, seed, fallback):
    """Partition of every name: top ``part_power`` bits of XXH64(path, seed).

    ``names`` holds paths (bytes, or str encoded as UTF-8) or (a, c, o)
    tuples (str or trailing None). Anything else, and str with lone
    surrogates, goes through ``fallback(item) -> bytes`` (``name_path``), which
    may raise. Returns int64[len(names)].
    """
    cdef Py_ssize_t n = len(names), i, size = 0
    cdef uint64_t s = <uint64_t>(int(seed) & 0xFFFFFFFFFFFFFFFF)
    cdef int shift = 64 - part_power
    cdef cnp.ndarray[int64_t, ndim=1] out = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] ov = out
    cdef object item, path
    cdef const char* p = NULL
    cdef _Buf buf = _Buf()
    cdef uint64_t h
    if part_power < 0 or part_power > 32:
        raise ValueError(f"part_power {part_power} out of range 0..32")
    for i in range(n):
        item = names[i]
        if type(item) is bytes:
            p = PyBytes_AS_STRING(item)
            size = PyBytes_GET_SIZE(item)
        elif type(item) is str and _utf8(item, &p, &size):
            pass
        elif type(item) is tuple and _join_tuple(<tuple>item, buf, &size):
            p = buf.data
        else:
            path = fallback(item)
            h = _xxh64(<const uint8_t*>PyBytes_AS_STRING(path), PyBytes_GET_SIZE(path), s)
            ov[i] = 0 if part_power == 0 else <int64_t>(h >> shift)
            continue
        h = _xxh64(<const uint8_t*>p, size, s)
        ov[i] = 0 if part_power == 0 else <int64_t>(h >> shift)
    return out


def primaries_bulk(const int32_t[:, ::1] table, const int64_t[::1] parts):
    """``out[i][r] = table[r][parts[i]]``: the primaries of many partitions."""
    cdef Py_ssize_t n = parts.shape[0], reps = table.shape[0], nparts = table.shape[1], i, r
    cdef cnp.ndarray[int32_t, ndim=2] out = np.empty((n, reps), dtype=np.int32)
    cdef int32_t[:, ::1] ov = out
    cdef int64_t part
    for i in range(n):
        part = parts[i]
        if part < 0 or part >= nparts:
            raise IndexError(f"partition {part} out of range")
    with nogil:
        for i in range(n):
            part = parts[i]
            for r in range(reps):
                ov[i, r] = table[r, part]
    return out


def handoff_order(const int32_t[:, ::1] table, const int32_t[::1] dev_region,
                  const int32_t[::1] dev_zone, const int32_t[::1] dev_host,
                  const int32_t[::1] candidates, int64_t part, int64_t start, int64_t inc):
    """Handoff devices of ``part``, best first (see ``ring._lookup_twins``).

    Walk partitions ``(start + j*inc) % parts`` for ``j < ceil(parts/inc)`` and
    list each device the first time it appears in the table, then the
    ``candidates`` (devices with partitions, ascending) the walk missed. Emit,
    in that order, devices in a region no earlier pick used, then a new zone,
    then a new host, then any unused device. Primaries are never emitted.
    Returns int32[k].
    """
    cdef Py_ssize_t reps = table.shape[0], nparts = table.shape[1]
    cdef Py_ssize_t ndev = dev_region.shape[0], r, k, seen_n = 0, out_n = 0, idx
    cdef Py_ssize_t ncand = candidates.shape[0]
    cdef int64_t hp, j, steps
    cdef int32_t d, pas
    cdef int32_t nreg = 0, nzone = 0, nhost = 0
    if part < 0 or part >= nparts:
        raise IndexError(f"partition {part} out of range")
    if inc < 1 or start < 0 or start >= nparts:
        raise ValueError("bad walk start/inc")
    for k in range(ndev):
        if dev_region[k] + 1 > nreg:
            nreg = dev_region[k] + 1
        if dev_zone[k] + 1 > nzone:
            nzone = dev_zone[k] + 1
        if dev_host[k] + 1 > nhost:
            nhost = dev_host[k] + 1
    cdef cnp.ndarray[int32_t, ndim=1] seen = np.empty(ndev, dtype=np.int32)
    cdef cnp.ndarray[int32_t, ndim=1] out = np.empty(ndev, dtype=np.int32)
    cdef cnp.ndarray[uint8_t, ndim=1] used_dev = np.zeros(ndev + 1, dtype=np.uint8)
    cdef cnp.ndarray[uint8_t, ndim=1] used_reg = np.zeros(nreg + 1, dtype=np.uint8)
    cdef cnp.ndarray[uint8_t, ndim=1] used_zone = np.zeros(nzone + 1, dtype=np.uint8)
    cdef cnp.ndarray[uint8_t, ndim=1] used_host = np.zeros(nhost + 1, dtype=np.uint8)
    cdef cnp.ndarray[uint8_t, ndim=1] listed = np.zeros(ndev + 1, dtype=np.uint8)
    cdef int32_t[::1] sv = seen, outv = out
    cdef uint8_t[::1] ud = used_dev, ur = used_reg, uz = used_zone, uh = used_host, ls = listed
    with nogil:
        for r in range(reps):
            d = table[r, part]
            if d >= 0:
                ud[d] = 1
                ur[dev_region[d]] = 1
                uz[dev_zone[d]] = 1
                uh[dev_host[d]] = 1
        steps = (nparts + inc - 1) // inc
        j = 0
        while j < steps and seen_n < ncand:
            hp = (start + j * inc) % nparts
            for r in range(reps):
                d = table[r, hp]
                if d >= 0 and not ls[d]:
                    ls[d] = 1
                    sv[seen_n] = d
                    seen_n += 1
            j += 1
        for idx in range(ncand):
            d = candidates[idx]
            if not ls[d]:
                ls[d] = 1
                sv[seen_n] = d
                seen_n += 1
        for pas in range(4):
            for idx in range(seen_n):
                d = sv[idx]
                if ud[d]:
                    continue
                if pas == 0:
                    if ur[dev_region[d]]:
                        continue
                elif pas == 1:
                    if uz[dev_zone[d]]:
                        continue
                elif pas == 2:
                    if uh[dev_host[d]]:
                        continue
                ud[d] = 1
                ur[dev_region[d]] = 1
                uz[dev_zone[d]] = 1
                uh[dev_host[d]] = 1
                outv[out_n] = d
                out_n += 1
    return out[:out_n].copy()
