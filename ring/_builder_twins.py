"""Pure-Python twins of the builder kernels in ``_native/builder.pyx``.

Same results, bit for bit (tests/unit/test_builder_native_twin.py); the
contracts are in :mod:`ring._builder_kernels`. Used when the extension is
not built or ``RINGSTACK_PUREPYTHON=1``.
"""

from __future__ import annotations

import numpy as np

_M64 = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64 finaliser (the kernel's seeded tie-break), on Python ints."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _M64
    x ^= x >> 31
    return x


def _key(salt: int, c: int) -> int:
    return _mix(salt ^ ((c * 0xD6E8FEB86659FD93) & _M64))


def _salt(seed: int, p: int, r: int, level: int) -> int:
    return _mix(seed ^ _mix(((p * 0x9E3779B97F4A7C15) + r * 4 + level) & _M64))


def _choose(lo: int, hi: int, cnt: list[int], cap: list[int], nact: list[int],
            avail: list[int], salt: int) -> int:
    best = -1
    kb = 0
    for c in range(lo, hi):
        if cnt[c] < cap[c]:
            if best < 0 or avail[c] > avail[best]:
                best = c
                kb = _key(salt, c)
            elif avail[c] == avail[best]:
                kc = _key(salt, c)
                if kc > kb:
                    best, kb = c, kc
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
                    best, kb = c, kc
    return best


def place_replicas_py(assign: np.ndarray, parts: np.ndarray,
                      zone_start: np.ndarray, host_start: np.ndarray, dev_start: np.ndarray,
                      dev_host: np.ndarray, host_zone: np.ndarray, zone_region: np.ndarray,
                      cap_g: np.ndarray, cap_z: np.ndarray, cap_h: np.ndarray, cap_d: np.ndarray,
                      nact_g: np.ndarray, nact_z: np.ndarray, nact_h: np.ndarray,
                      avail_g: np.ndarray, avail_z: np.ndarray, avail_h: np.ndarray,
                      avail_d: np.ndarray, salt: int) -> int:
    """Pure twin of ``_native.builder.place_replicas`` (see module docstring)."""
    R = assign.shape[0]
    G, Z, H, D = len(cap_g), len(cap_z), len(cap_h), len(cap_d)
    if G == 0 or D == 0:
        return 0
    zs, hs, ds = zone_start.tolist(), host_start.tolist(), dev_start.tolist()
    dh, hz, zr = dev_host.tolist(), host_zone.tolist(), zone_region.tolist()
    capg, capz, caph, capd = cap_g.tolist(), cap_z.tolist(), cap_h.tolist(), cap_d.tolist()
    nag, naz, nah = nact_g.tolist(), nact_z.tolist(), nact_h.tolist()
    ag, az, ah, ad = avail_g.tolist(), avail_z.tolist(), avail_h.tolist(), avail_d.tolist()
    cg, cz, ch, cd = [0] * G, [0] * Z, [0] * H, [0] * D
    placed = 0
    failed = -1
    for p in parts.tolist():
        col = assign[:, p].tolist()
        for d in col:
            if d >= 0:
                h = dh[d]
                z = hz[h]
                cd[d] += 1
                ch[h] += 1
                cz[z] += 1
                cg[zr[z]] += 1
        for r in range(R):
            if col[r] >= 0:
                continue
            g = _choose(0, G, cg, capg, nag, ag, _salt(salt, p, r, 0))
            z = _choose(zs[g], zs[g + 1], cz, capz, naz, az, _salt(salt, p, r, 1)) if g >= 0 else -1
            h = _choose(hs[z], hs[z + 1], ch, caph, nah, ah, _salt(salt, p, r, 2)) if z >= 0 else -1
            d = _choose(ds[h], ds[h + 1], cd, capd, capd, ad, _salt(salt, p, r, 3)) if h >= 0 else -1
            if d < 0:
                failed = p
                break
            col[r] = d
            cd[d] += 1
            ch[h] += 1
            cz[z] += 1
            cg[g] += 1
            ad[d] -= 1
            ah[h] -= 1
            az[z] -= 1
            ag[g] -= 1
            placed += 1
        assign[:, p] = col
        for d in col:
            if d >= 0:
                h = dh[d]
                z = hz[h]
                cd[d] -= 1
                ch[h] -= 1
                cz[z] -= 1
                cg[zr[z]] -= 1
        if failed >= 0:
            break
    avail_g[:], avail_z[:], avail_h[:], avail_d[:] = ag, az, ah, ad
    if failed >= 0:
        return -(failed + 1)
    return placed


def _choose_move(lo: int, hi: int, src: int, cnt: list[int], cap: list[int], avail: list[int],
                 tex: list[int], salt: int) -> int:
    best = -1
    kb = 0
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
                    best, kb = c, kc
        if best >= 0:
            return best
        if src < 0:
            for c in range(lo, hi):
                if cnt[c] >= cap[c] or avail[c] <= 0:
                    continue
                if best < 0 or avail[c] > avail[best]:
                    best = c
                    kb = _key(salt, c)
                elif avail[c] == avail[best]:
                    kc = _key(salt, c)
                    if kc > kb:
                        best, kb = c, kc
            return best
    if cnt[src] < cap[src] and avail[src] > 0:
        return src
    return -1


def move_replicas_py(assign: np.ndarray, parts: np.ndarray, free: np.ndarray,
                     can_move: np.ndarray, excess: np.ndarray,
                     tex_g: np.ndarray, tex_z: np.ndarray, tex_h: np.ndarray,
                     zone_start: np.ndarray, host_start: np.ndarray, dev_start: np.ndarray,
                     dev_host: np.ndarray, host_zone: np.ndarray, zone_region: np.ndarray,
                     cap_g: np.ndarray, cap_z: np.ndarray, cap_h: np.ndarray, cap_d: np.ndarray,
                     avail_g: np.ndarray, avail_z: np.ndarray, avail_h: np.ndarray,
                     avail_d: np.ndarray, salt: int) -> int:
    """Pure twin of ``_native.builder.move_replicas`` (see module docstring)."""
    R = assign.shape[0]
    G, Z, H, D = len(cap_g), len(cap_z), len(cap_h), len(cap_d)
    if G == 0 or D == 0 or R > 64:
        return 0
    zs, hs, ds = zone_start.tolist(), host_start.tolist(), dev_start.tolist()
    dh, hz, zr = dev_host.tolist(), host_zone.tolist(), zone_region.tolist()
    capg, capz, caph, capd = cap_g.tolist(), cap_z.tolist(), cap_h.tolist(), cap_d.tolist()
    ag, az, ah, ad = avail_g.tolist(), avail_z.tolist(), avail_h.tolist(), avail_d.tolist()
    ex, xg, xz, xh = excess.tolist(), tex_g.tolist(), tex_z.tolist(), tex_h.tolist()
    cg, cz, ch, cd = [0] * G, [0] * Z, [0] * H, [0] * D
    moved = 0
    for p in parts.tolist():
        col = assign[:, p].tolist()
        fcol = free[:, p].tolist()
        cm = int(can_move[p])
        for d in col:
            if d >= 0:
                h = dh[d]
                z = hz[h]
                cd[d] += 1
                ch[h] += 1
                cz[z] += 1
                cg[zr[z]] += 1
        tried = [False] * R
        for _k in range(R):
            best = -1
            for r in range(R):
                d = col[r]
                if tried[r] or d < 0 or ex[d] <= 0:
                    continue
                if not fcol[r] and not cm:
                    continue
                if best < 0 or ex[d] > ex[col[best]]:
                    best = r
            if best < 0:
                break
            r = best
            tried[r] = True
            d = col[r]
            h0 = dh[d]
            z0 = hz[h0]
            g0 = zr[z0]
            cd[d] -= 1
            ch[h0] -= 1
            cz[z0] -= 1
            cg[g0] -= 1
            z = h = nd = -1
            g = _choose_move(0, G, g0, cg, capg, ag, xg, _salt(salt, p, r, 0))
            if g >= 0:
                z = _choose_move(zs[g], zs[g + 1], z0 if g == g0 else -1, cz, capz, az, xz,
                                 _salt(salt, p, r, 1))
            if z >= 0:
                h = _choose_move(hs[z], hs[z + 1], h0 if z == z0 else -1, ch, caph, ah, xh,
                                 _salt(salt, p, r, 2))
            if h >= 0:
                nd = _choose_move(ds[h], ds[h + 1], -1, cd, capd, ad, ex, _salt(salt, p, r, 3))
            if nd < 0 or nd == d:
                nd, h, z, g = d, h0, z0, g0
            else:
                col[r] = nd
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
                if not fcol[r]:
                    fcol[r] = 1
                    cm = 0
                moved += 1
            cd[nd] += 1
            ch[h] += 1
            cz[z] += 1
            cg[g] += 1
        assign[:, p] = col
        free[:, p] = fcol
        can_move[p] = cm
        for d in col:
            if d >= 0:
                h = dh[d]
                z = hz[h]
                cd[d] -= 1
                ch[h] -= 1
                cz[z] -= 1
                cg[zr[z]] -= 1
    avail_g[:], avail_z[:], avail_h[:], avail_d[:] = ag, az, ah, ad
    excess[:], tex_g[:], tex_z[:], tex_h[:] = ex, xg, xz, xh
    return moved


def gather_dispersion_py(assign: np.ndarray, parts: np.ndarray, can_move: np.ndarray,
                         excess: np.ndarray, dev_host: np.ndarray, host_zone: np.ndarray,
                         zone_region: np.ndarray, cap_g: np.ndarray, cap_z: np.ndarray,
                         cap_h: np.ndarray, cap_d: np.ndarray) -> int:
    """Pure twin of ``_native.builder.gather_dispersion`` (see module docstring)."""
    R = assign.shape[0]
    G, Z, H, D = len(cap_g), len(cap_z), len(cap_h), len(cap_d)
    if G == 0 or D == 0:
        return 0
    dh, hz, zr = dev_host.tolist(), host_zone.tolist(), zone_region.tolist()
    capg, capz, caph, capd = cap_g.tolist(), cap_z.tolist(), cap_h.tolist(), cap_d.tolist()
    ex = excess.tolist()
    cg, cz, ch, cd = [0] * G, [0] * Z, [0] * H, [0] * D
    gathered = 0
    for p in parts.tolist():
        col = assign[:, p].tolist()
        cm = int(can_move[p])
        for d in col:
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
                d = col[r]
                if d < 0:
                    continue
                h = dh[d]
                z = hz[h]
                g = zr[z]
                if not (cd[d] > capd[d] or ch[h] > caph[h] or cz[z] > capz[z] or cg[g] > capg[g]):
                    continue
                if not cm and cd[d] <= 1:
                    continue
                if best < 0 or ex[d] > ex[col[best]]:
                    best = r
            if best < 0:
                break
            d = col[best]
            h = dh[d]
            z = hz[h]
            dup = cd[d] > 1
            cd[d] -= 1
            ch[h] -= 1
            cz[z] -= 1
            cg[zr[z]] -= 1
            col[best] = -1
            ex[d] -= 1
            gathered += 1
            if not dup:
                cm = 0
        assign[:, p] = col
        can_move[p] = cm
        for d in col:
            if d >= 0:
                h = dh[d]
                z = hz[h]
                cd[d] -= 1
                ch[h] -= 1
                cz[z] -= 1
                cg[zr[z]] -= 1
    excess[:] = ex
    return gathered


def tier_excess_py(assign: np.ndarray, dev_host: np.ndarray, host_zone: np.ndarray,
                   zone_region: np.ndarray, lim_g: np.ndarray, lim_z: np.ndarray,
                   lim_h: np.ndarray, lim_d: np.ndarray) -> np.ndarray:
    """Pure twin of ``_native.builder.tier_excess`` (vectorised numpy)."""
    R, N = assign.shape
    out = np.zeros(N, dtype=np.int32)
    if N == 0 or R > 64:
        return out
    valid = assign >= 0
    d = np.where(valid, assign, 0)
    h = dev_host[d] if len(dev_host) else d
    z = host_zone[h] if len(host_zone) else h
    g = zone_region[z] if len(zone_region) else z
    for T, lim in ((g, lim_g), (z, lim_z), (h, lim_h), (d, lim_d)):
        T = np.where(valid, T, -1)
        total = np.zeros(N, dtype=np.int64)
        for r in range(R):
            same = np.zeros(N, dtype=np.int64)
            first = valid[r].copy()
            for q in range(R):
                eq = T[q] == T[r]
                same += eq
                if q < r:
                    first &= ~eq
            limit = lim[np.where(valid[r], T[r], 0)] if len(lim) else 0
            total += np.where(first, np.maximum(same - limit, 0), 0)
        np.maximum(out, total.astype(np.int32), out=out)
    return out
