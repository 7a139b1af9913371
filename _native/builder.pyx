# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Ring builder hot loop: place unassigned replicas, partition by partition.

The pure twin is ``ring._builder_kernels.place_replicas_py``; both must give
identical results (tests/unit/test_builder_native_twin.py). The contract is
documented there.
"""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t


cdef inline Py_ssize_t _choose(Py_ssize_t lo, Py_ssize_t hi, const int32_t* cnt,
                               const int32_t* cap, const int32_t* nact,
                               const int64_t* avail, const int32_t* tb) noexcept nogil:
    cdef Py_ssize_t c, best = -1
    for c in range(lo, hi):
        if cnt[c] < cap[c]:
            if (best < 0 or avail[c] > avail[best]
                    or (avail[c] == avail[best] and tb[c] > tb[best])):
                best = c
    if best >= 0:
        return best
    for c in range(lo, hi):
        if cnt[c] < nact[c]:
            if (best < 0 or cnt[c] < cnt[best]
                    or (cnt[c] == cnt[best] and (avail[c] > avail[best]
                        or (avail[c] == avail[best] and tb[c] > tb[best])))):
                best = c
    return best


def place_replicas(int32_t[:, ::1] assign, const int32_t[::1] parts,
                   const int32_t[::1] zone_start, const int32_t[::1] host_start,
                   const int32_t[::1] dev_start,
                   const int32_t[::1] dev_host, const int32_t[::1] host_zone,
                   const int32_t[::1] zone_region,
                   const int32_t[::1] cap_g, const int32_t[::1] cap_z,
                   const int32_t[::1] cap_h, const int32_t[::1] cap_d,
                   const int32_t[::1] nact_g, const int32_t[::1] nact_z,
                   const int32_t[::1] nact_h,
                   int64_t[::1] avail_g, int64_t[::1] avail_z,
                   int64_t[::1] avail_h, int64_t[::1] avail_d,
                   const int32_t[::1] tb_g, const int32_t[::1] tb_z,
                   const int32_t[::1] tb_h, const int32_t[::1] tb_d):
    cdef Py_ssize_t R = assign.shape[0]
    cdef Py_ssize_t N = assign.shape[1]
    cdef Py_ssize_t G = cap_g.shape[0]
    cdef Py_ssize_t Z = cap_z.shape[0]
    cdef Py_ssize_t H = cap_h.shape[0]
    cdef Py_ssize_t D = cap_d.shape[0]
    if G == 0 or D == 0:
        return 0
    cdef cnp.ndarray[int32_t, ndim=1] a_cg = np.zeros(G, dtype=np.int32)
    cdef cnp.ndarray[int32_t, ndim=1] a_cz = np.zeros(Z, dtype=np.int32)
    cdef cnp.ndarray[int32_t, ndim=1] a_ch = np.zeros(H, dtype=np.int32)
    cdef cnp.ndarray[int32_t, ndim=1] a_cd = np.zeros(D, dtype=np.int32)
    cdef int32_t* cg = &a_cg[0]
    cdef int32_t* cz = &a_cz[0]
    cdef int32_t* ch = &a_ch[0]
    cdef int32_t* cd = &a_cd[0]
    cdef int32_t* A = &assign[0, 0]
    cdef const int32_t* zs = &zone_start[0]
    cdef const int32_t* hs = &host_start[0]
    cdef const int32_t* ds = &dev_start[0]
    cdef const int32_t* dh = &dev_host[0]
    cdef const int32_t* hz = &host_zone[0]
    cdef const int32_t* zr = &zone_region[0]
    cdef int64_t* ag = &avail_g[0]
    cdef int64_t* az = &avail_z[0]
    cdef int64_t* ah = &avail_h[0]
    cdef int64_t* ad = &avail_d[0]
    cdef Py_ssize_t i, r, p, g, z, h, d, nparts = parts.shape[0]
    cdef Py_ssize_t placed = 0
    cdef Py_ssize_t failed = -1
    with nogil:
        for i in range(nparts):
            p = parts[i]
            for r in range(R):
                d = A[r * N + p]
                if d >= 0:
                    h = dh[d]
                    z = hz[h]
                    cd[d] += 1
                    ch[h] += 1
                    cz[z] += 1
                    cg[zr[z]] += 1
            for r in range(R):
                if A[r * N + p] >= 0:
                    continue
                g = _choose(0, G, cg, &cap_g[0], &nact_g[0], ag, &tb_g[0])
                if g < 0:
                    failed = p
                    break
                z = _choose(zs[g], zs[g + 1], cz, &cap_z[0], &nact_z[0], az, &tb_z[0])
                if z < 0:
                    failed = p
                    break
                h = _choose(hs[z], hs[z + 1], ch, &cap_h[0], &nact_h[0], ah, &tb_h[0])
                if h < 0:
                    failed = p
                    break
                d = _choose(ds[h], ds[h + 1], cd, &cap_d[0], &cap_d[0], ad, &tb_d[0])
                if d < 0:
                    failed = p
                    break
                A[r * N + p] = <int32_t>d
                cd[d] += 1
                ch[h] += 1
                cz[z] += 1
                cg[g] += 1
                ad[d] -= 1
                ah[h] -= 1
                az[z] -= 1
                ag[g] -= 1
                placed += 1
            for r in range(R):
                d = A[r * N + p]
                if d >= 0:
                    h = dh[d]
                    z = hz[h]
                    cd[d] -= 1
                    ch[h] -= 1
                    cz[z] -= 1
                    cg[zr[z]] -= 1
            if failed >= 0:
                break
    if failed >= 0:
        return -(failed + 1)
    return placed


cdef inline Py_ssize_t _choose_wanting(Py_ssize_t lo, Py_ssize_t hi, const int32_t* cnt,
                                       const int32_t* cap, const int64_t* avail,
                                       const int32_t* tb) noexcept nogil:
    cdef Py_ssize_t c, best = -1
    for c in range(lo, hi):
        if cnt[c] < cap[c] and avail[c] > 0:
            if (best < 0 or avail[c] > avail[best]
                    or (avail[c] == avail[best] and tb[c] > tb[best])):
                best = c
    return best


def move_replicas(int32_t[:, ::1] assign, const int32_t[::1] parts,
                  int8_t[:, ::1] free, int8_t[::1] can_move, int64_t[::1] excess,
                  const int32_t[::1] zone_start, const int32_t[::1] host_start,
                  const int32_t[::1] dev_start,
                  const int32_t[::1] dev_host, const int32_t[::1] host_zone,
                  const int32_t[::1] zone_region,
                  const int32_t[::1] cap_g, const int32_t[::1] cap_z,
                  const int32_t[::1] cap_h, const int32_t[::1] cap_d,
                  int64_t[::1] avail_g, int64_t[::1] avail_z,
                  int64_t[::1] avail_h, int64_t[::1] avail_d,
                  const int32_t[::1] tb_g, const int32_t[::1] tb_z,
                  const int32_t[::1] tb_h, const int32_t[::1] tb_d):
    cdef Py_ssize_t R = assign.shape[0]
    cdef Py_ssize_t N = assign.shape[1]
    cdef Py_ssize_t G = cap_g.shape[0]
    cdef Py_ssize_t Z = cap_z.shape[0]
    cdef Py_ssize_t H = cap_h.shape[0]
    cdef Py_ssize_t D = cap_d.shape[0]
    if G == 0 or D == 0 or R > 64:
        return 0
    cdef cnp.ndarray[int32_t, ndim=1] a_cg = np.zeros(G, dtype=np.int32)
    cdef cnp.ndarray[int32_t, ndim=1] a_cz = np.zeros(Z, dtype=np.int32)
    cdef cnp.ndarray[int32_t, ndim=1] a_ch = np.zeros(H, dtype=np.int32)
    cdef cnp.ndarray[int32_t, ndim=1] a_cd = np.zeros(D, dtype=np.int32)
    cdef int32_t* cg = &a_cg[0]
    cdef int32_t* cz = &a_cz[0]
    cdef int32_t* ch = &a_ch[0]
    cdef int32_t* cd = &a_cd[0]
    cdef int32_t* A = &assign[0, 0]
    cdef int8_t* F = &free[0, 0]
    cdef int64_t* ex = &excess[0]
    cdef const int32_t* dh = &dev_host[0]
    cdef const int32_t* hz = &host_zone[0]
    cdef const int32_t* zr = &zone_region[0]
    cdef int64_t* ag = &avail_g[0]
    cdef int64_t* az = &avail_z[0]
    cdef int64_t* ah = &avail_h[0]
    cdef int64_t* ad = &avail_d[0]
    cdef Py_ssize_t i, r, k, p, g, z, h, d, nd, best, nparts = parts.shape[0]
    cdef Py_ssize_t moved = 0
    cdef uint64_t tried
    with nogil:
        for i in range(nparts):
            p = parts[i]
            for r in range(R):
                d = A[r * N + p]
                if d >= 0:
                    h = dh[d]
                    z = hz[h]
                    cd[d] += 1
                    ch[h] += 1
                    cz[z] += 1
                    cg[zr[z]] += 1
            tried = 0
            for k in range(R):
                # the untried movable replica on the most overfull drive
                best = -1
                for r in range(R):
                    d = A[r * N + p]
                    if (tried >> r) & 1 or d < 0 or ex[d] <= 0:
                        continue
                    if not F[r * N + p] and not can_move[p]:
                        continue
                    if best < 0 or ex[d] > ex[A[best * N + p]]:
                        best = r
                if best < 0:
                    break
                r = best
                tried |= (<uint64_t>1) << r
                d = A[r * N + p]
                h = dh[d]
                z = hz[h]
                g = zr[z]
                cd[d] -= 1
                ch[h] -= 1
                cz[z] -= 1
                cg[g] -= 1
                g = _choose_wanting(0, G, cg, &cap_g[0], ag, &tb_g[0])
                z = -1
                h = -1
                nd = -1
                if g >= 0:
                    z = _choose_wanting(zone_start[g], zone_start[g + 1], cz, &cap_z[0], az,
                                        &tb_z[0])
                if z >= 0:
                    h = _choose_wanting(host_start[z], host_start[z + 1], ch, &cap_h[0], ah,
                                        &tb_h[0])
                if h >= 0:
                    nd = _choose_wanting(dev_start[h], dev_start[h + 1], cd, &cap_d[0], ad,
                                         &tb_d[0])
                if nd < 0 or nd == d:
                    nd = d  # no better home: stays put
                    h = dh[d]
                    z = hz[h]
                    g = zr[z]
                else:
                    A[r * N + p] = <int32_t>nd
                    ex[d] -= 1
                    ex[nd] += 1
                    ad[nd] -= 1
                    ah[h] -= 1
                    az[z] -= 1
                    ag[g] -= 1
                    if not F[r * N + p]:
                        F[r * N + p] = 1
                        can_move[p] = 0
                    moved += 1
                cd[nd] += 1
                ch[h] += 1
                cz[z] += 1
                cg[g] += 1
            for r in range(R):
                d = A[r * N + p]
                if d >= 0:
                    h = dh[d]
                    z = hz[h]
                    cd[d] -= 1
                    ch[h] -= 1
                    cz[z] -= 1
                    cg[zr[z]] -= 1
    return moved
