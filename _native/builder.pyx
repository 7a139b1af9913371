# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Ring builder hot loop: place unassigned replicas, partition by partition.

The pure twin is ``ring._builder_kernels.place_replicas_py``; both must give
identical results (tests/unit/test_builder_native_twin.py). The contract is
documented there.
"""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t


cdef inline uint64_t _mix(uint64_t x) noexcept nogil:
    """splitmix64 finaliser: the seeded tie-break between equally wanting tiers."""
    x ^= x >> 30
    x *= <uint64_t>0xBF58476D1CE4E5B9
    x ^= x >> 27
    x *= <uint64_t>0x94D049BB133111EB
    x ^= x >> 31
    return x


cdef inline uint64_t _key(uint64_t salt, Py_ssize_t c) noexcept nogil:
    return _mix(salt ^ (<uint64_t>c * <uint64_t>0xD6E8FEB86659FD93))


cdef inline Py_ssize_t _choose(Py_ssize_t lo, Py_ssize_t hi, const int32_t* cnt,
                               const int32_t* cap, const int32_t* nact,
                               const int64_t* avail, uint64_t salt) noexcept nogil:
    cdef Py_ssize_t c, best = -1
    cdef uint64_t kb = 0, kc
    for c in range(lo, hi):
        if cnt[c] < cap[c]:
            if best < 0 or avail[c] > avail[best]:
                best = c
                kb = _key(salt, c)
            elif avail[c] == avail[best]:
                kc = _key(salt, c)
                if kc > kb:
                    best = c
                    kb = kc
    if best >= 0:
        return best
    for c in range(lo, hi):
        if cnt[c] < nact[c]:
            if best < 0 or cnt[c] < cnt[best] or (cnt[c] == cnt[best] and avail[c] > avail[best]):
                best = c
                kb = _key(salt, c)
            elif cnt[c] == cnt[best] and avail[c] == avail[best]:
                kc = _key(salt, c)
                if kc > kb:
                    best = c
                    kb = kc
    return best


cdef inline uint64_t _salt(uint64_t seed, Py_ssize_t p, Py_ssize_t r, int level) noexcept nogil:
    return _mix(seed ^ _mix(<uint64_t>p * <uint64_t>0x9E3779B97F4A7C15
                            + <uint64_t>(r * 4 + level)))


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
                   uint64_t salt):
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
                g = _choose(0, G, cg, &cap_g[0], &nact_g[0], ag, _salt(salt, p, r, 0))
                if g < 0:
                    failed = p
                    break
                z = _choose(zs[g], zs[g + 1], cz, &cap_z[0], &nact_z[0], az, _salt(salt, p, r, 1))
                if z < 0:
                    failed = p
                    break
                h = _choose(hs[z], hs[z + 1], ch, &cap_h[0], &nact_h[0], ah, _salt(salt, p, r, 2))
                if h < 0:
                    failed = p
                    break
                d = _choose(ds[h], ds[h + 1], cd, &cap_d[0], &cap_d[0], ad, _salt(salt, p, r, 3))
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


cdef inline Py_ssize_t _choose_move(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t src,
                                    const int32_t* cnt, const int32_t* cap,
                                    const int64_t* avail, const int64_t* tex,
                                    uint64_t salt) noexcept nogil:
    """Destination tier for a balance move at one level.

    ``src`` is the tier the replica comes from (or -1 once the path left it).
    A replica leaves its tier only if that tier holds more than its target
    (``tex > 0``), and only for a tier below its target; otherwise it stays.
    Either way the tier must have a wanting drive below (``avail > 0``) and
    room under its cap for this partition.
    """
    cdef Py_ssize_t c, best = -1
    cdef uint64_t kb = 0, kc
    if src < 0 or tex[src] > 0:
        for c in range(lo, hi):
            if c == src or tex[c] >= 0 or cnt[c] >= cap[c] or avail[c] <= 0:
                continue
            if best < 0 or tex[c] < tex[best]:
                best = c
                kb = _key(salt, c)
            elif tex[c] == tex[best]:
                kc = _key(salt, c)
                if kc > kb:
                    best = c
                    kb = kc
        if best >= 0:
            return best
        if src < 0:
            # left the parent: any tier with a wanting drive and room will do
            for c in range(lo, hi):
                if cnt[c] >= cap[c] or avail[c] <= 0:
                    continue
                if best < 0 or avail[c] > avail[best]:
                    best = c
                    kb = _key(salt, c)
                elif avail[c] == avail[best]:
                    kc = _key(salt, c)
                    if kc > kb:
                        best = c
                        kb = kc
            return best
    if cnt[src] < cap[src] and avail[src] > 0:
        return src
    return -1


def move_replicas(int32_t[:, ::1] assign, const int32_t[::1] parts,
                  int8_t[:, ::1] free, int8_t[::1] can_move, int64_t[::1] excess,
                  int64_t[::1] tex_g, int64_t[::1] tex_z, int64_t[::1] tex_h,
                  const int32_t[::1] zone_start, const int32_t[::1] host_start,
                  const int32_t[::1] dev_start,
                  const int32_t[::1] dev_host, const int32_t[::1] host_zone,
                  const int32_t[::1] zone_region,
                  const int32_t[::1] cap_g, const int32_t[::1] cap_z,
                  const int32_t[::1] cap_h, const int32_t[::1] cap_d,
                  int64_t[::1] avail_g, int64_t[::1] avail_z,
                  int64_t[::1] avail_h, int64_t[::1] avail_d,
                  uint64_t salt):
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
    cdef int64_t* xg = &tex_g[0]
    cdef int64_t* xz = &tex_z[0]
    cdef int64_t* xh = &tex_h[0]
    cdef const int32_t* dh = &dev_host[0]
    cdef const int32_t* hz = &host_zone[0]
    cdef const int32_t* zr = &zone_region[0]
    cdef int64_t* ag = &avail_g[0]
    cdef int64_t* az = &avail_z[0]
    cdef int64_t* ah = &avail_h[0]
    cdef int64_t* ad = &avail_d[0]
    cdef Py_ssize_t i, r, k, p, g, z, h, d, g0, z0, h0, nd, best, nparts = parts.shape[0]
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
                h0 = dh[d]
                z0 = hz[h0]
                g0 = zr[z0]
                cd[d] -= 1
                ch[h0] -= 1
                cz[z0] -= 1
                cg[g0] -= 1
                z = -1
                h = -1
                nd = -1
                g = _choose_move(0, G, g0, cg, &cap_g[0], ag, xg, _salt(salt, p, r, 0))
                if g >= 0:
                    z = _choose_move(zone_start[g], zone_start[g + 1], z0 if g == g0 else -1,
                                     cz, &cap_z[0], az, xz, _salt(salt, p, r, 1))
                if z >= 0:
                    h = _choose_move(host_start[z], host_start[z + 1], h0 if z == z0 else -1,
                                     ch, &cap_h[0], ah, xh, _salt(salt, p, r, 2))
                if h >= 0:
                    nd = _choose_move(dev_start[h], dev_start[h + 1], -1, cd, &cap_d[0], ad,
                                      ex, _salt(salt, p, r, 3))
                if nd < 0 or nd == d:
                    nd = d  # no better home: stays put
                    h = h0
                    z = z0
                    g = g0
                else:
                    A[r * N + p] = <int32_t>nd
                    ex[d] -= 1
                    ex[nd] += 1
                    if h != h0:
                        xh[h0] -= 1
                        xh[h] += 1
                    if z != z0:
                        xz[z0] -= 1
                        xz[z] += 1
                    if g != g0:
                        xg[g0] -= 1
                        xg[g] += 1
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


def gather_dispersion(int32_t[:, ::1] assign, const int32_t[::1] parts,
                      int8_t[::1] can_move, int64_t[::1] excess,
                      const int32_t[::1] dev_host, const int32_t[::1] host_zone,
                      const int32_t[::1] zone_region,
                      const int32_t[::1] cap_g, const int32_t[::1] cap_z,
                      const int32_t[::1] cap_h, const int32_t[::1] cap_d):
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
    cdef int64_t* ex = &excess[0]
    cdef const int32_t* dh = &dev_host[0]
    cdef const int32_t* hz = &host_zone[0]
    cdef const int32_t* zr = &zone_region[0]
    cdef Py_ssize_t i, r, p, g, z, h, d, best, nparts = parts.shape[0]
    cdef Py_ssize_t gathered = 0
    cdef bint dup
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
            while True:
                best = -1
                for r in range(R):
                    d = A[r * N + p]
                    if d < 0:
                        continue
                    h = dh[d]
                    z = hz[h]
                    g = zr[z]
                    if not (cd[d] > cap_d[d] or ch[h] > cap_h[h] or cz[z] > cap_z[z]
                            or cg[g] > cap_g[g]):
                        continue
                    if not can_move[p] and cd[d] <= 1:
                        continue
                    if best < 0 or ex[d] > ex[A[best * N + p]]:
                        best = r
                if best < 0:
                    break
                d = A[best * N + p]
                h = dh[d]
                z = hz[h]
                dup = cd[d] > 1
                cd[d] -= 1
                ch[h] -= 1
                cz[z] -= 1
                cg[zr[z]] -= 1
                A[best * N + p] = -1
                ex[d] -= 1
                gathered += 1
                if not dup:
                    can_move[p] = 0
            for r in range(R):
                d = A[r * N + p]
                if d >= 0:
                    h = dh[d]
                    z = hz[h]
                    cd[d] -= 1
                    ch[h] -= 1
                    cz[z] -= 1
                    cg[zr[z]] -= 1
    return gathered


def tier_excess(const int32_t[:, ::1] assign, const int32_t[::1] dev_host,
                const int32_t[::1] host_zone, const int32_t[::1] zone_region,
                const int32_t[::1] lim_g, const int32_t[::1] lim_z,
                const int32_t[::1] lim_h, const int32_t[::1] lim_d):
    cdef Py_ssize_t R = assign.shape[0]
    cdef Py_ssize_t N = assign.shape[1]
    cdef cnp.ndarray[int32_t, ndim=1] out = np.zeros(N, dtype=np.int32)
    cdef int32_t* o = &out[0]
    cdef const int32_t* A = &assign[0, 0]
    cdef Py_ssize_t p, r, q, level, t, tq, d, worst, total, same
    cdef int32_t tiers[64]
    cdef const int32_t* lim
    if R > 64 or N == 0:
        return out
    with nogil:
        for p in range(N):
            worst = 0
            for level in range(4):
                for r in range(R):
                    d = A[r * N + p]
                    if d < 0:
                        tiers[r] = -1
                    elif level == 3:
                        tiers[r] = <int32_t>d
                    elif level == 2:
                        tiers[r] = dev_host[d]
                    elif level == 1:
                        tiers[r] = host_zone[dev_host[d]]
                    else:
                        tiers[r] = zone_region[host_zone[dev_host[d]]]
                if level == 0:
                    lim = &lim_g[0]
                elif level == 1:
                    lim = &lim_z[0]
                elif level == 2:
                    lim = &lim_h[0]
                else:
                    lim = &lim_d[0]
                total = 0
                for r in range(R):
                    t = tiers[r]
                    if t < 0:
                        continue
                    same = 0
                    for q in range(R):
                        tq = tiers[q]
                        if tq == t:
                            if q < r:
                                same = -1
                                break
                            same += 1
                    if same > lim[t]:
                        total += same - lim[t]
                if total > worst:
                    worst = total
            o[p] = <int32_t>worst
    return out
