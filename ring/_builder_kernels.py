"""The builder's placement loop: Cython kernel and its pure-Python twin.

Contract of ``place_replicas(assign, parts, ...)`` (both implementations give
identical results, bit for bit; tests/unit/test_builder_native_twin.py):

- ``assign`` is int32 [replicas][partitions] of dense drive indices, -1 for
  a replica to place. Only the partitions listed in ``parts`` are visited,
  in that order; every -1 replica of a visited partition is placed.
- For each replica, walk region -> zone -> host -> drive. At each level pick,
  among the children whose count of this partition's replicas is below the
  tier's cap (``cap_*``; drives: 1 if active else 0), the one with the most
  ``avail`` (partition-replicas it still wants), ties to the larger
  tie-break key ``tb_*``. If no child is under its cap, fall back to the
  least-used child that still has a free active drive (invariant 8: a second
  replica only lands in a failure domain when no other domain has room).
- Placing decrements ``avail`` of the chosen drive and of its tiers.
- Returns the number of replicas placed, or ``-(p + 1)`` if partition ``p``
  had no possible home (cannot happen when the partition has fewer assigned
  replicas than there are active drives).

Contract of ``move_replicas(assign, parts, free, can_move, excess, ...)``:

- Visits ``parts`` in order; in each partition tries its replicas on drives
  with ``excess > 0`` (most overfull first) that may move: the slot is
  ``free`` (already in flight this rebalance) or the partition ``can_move``.
- A replica moves only to a drive that wants parts (``avail > 0`` at every
  tier on the way) without breaking any tier cap; otherwise it stays. So
  every move strictly improves balance and never hurts dispersion.
- Moving a non-free slot sets it free and clears ``can_move`` (one move per
  partition per rebalance, invariant 8). ``excess`` and ``avail`` are kept
  up to date; returns the number of moves.

Selection: the kernel from ``_native.builder`` unless ``RINGSTACK_PUREPYTHON=1``
or it is not built (then a one-line warning on stderr, once).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

_warned = False


def _choose(lo: int, hi: int, cnt: list[int], cap: list[int], nact: list[int],
            avail: list[int], tb: list[int]) -> int:
    best = -1
    for c in range(lo, hi):
        if cnt[c] < cap[c] and (
            best < 0 or avail[c] > avail[best] or (avail[c] == avail[best] and tb[c] > tb[best])
        ):
            best = c
    if best >= 0:
        return best
    for c in range(lo, hi):
        if cnt[c] < nact[c] and (
            best < 0
            or cnt[c] < cnt[best]
            or (cnt[c] == cnt[best] and (avail[c] > avail[best]
                                         or (avail[c] == avail[best] and tb[c] > tb[best])))
        ):
            best = c
    return best


def place_replicas_py(assign: np.ndarray, parts: np.ndarray,
                      zone_start: np.ndarray, host_start: np.ndarray, dev_start: np.ndarray,
                      dev_host: np.ndarray, host_zone: np.ndarray, zone_region: np.ndarray,
                      cap_g: np.ndarray, cap_z: np.ndarray, cap_h: np.ndarray, cap_d: np.ndarray,
                      nact_g: np.ndarray, nact_z: np.ndarray, nact_h: np.ndarray,
                      avail_g: np.ndarray, avail_z: np.ndarray, avail_h: np.ndarray,
                      avail_d: np.ndarray,
                      tb_g: np.ndarray, tb_z: np.ndarray, tb_h: np.ndarray,
                      tb_d: np.ndarray) -> int:
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
    tbg, tbz, tbh, tbd = tb_g.tolist(), tb_z.tolist(), tb_h.tolist(), tb_d.tolist()
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
            g = _choose(0, G, cg, capg, nag, ag, tbg)
            z = _choose(zs[g], zs[g + 1], cz, capz, naz, az, tbz) if g >= 0 else -1
            h = _choose(hs[z], hs[z + 1], ch, caph, nah, ah, tbh) if z >= 0 else -1
            d = _choose(ds[h], ds[h + 1], cd, capd, capd, ad, tbd) if h >= 0 else -1
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


def _choose_wanting(lo: int, hi: int, cnt: list[int], cap: list[int], avail: list[int],
                    tb: list[int]) -> int:
    best = -1
    for c in range(lo, hi):
        if cnt[c] < cap[c] and avail[c] > 0 and (
            best < 0 or avail[c] > avail[best] or (avail[c] == avail[best] and tb[c] > tb[best])
        ):
            best = c
    return best


def move_replicas_py(assign: np.ndarray, parts: np.ndarray, free: np.ndarray,
                     can_move: np.ndarray, excess: np.ndarray,
                     zone_start: np.ndarray, host_start: np.ndarray, dev_start: np.ndarray,
                     dev_host: np.ndarray, host_zone: np.ndarray, zone_region: np.ndarray,
                     cap_g: np.ndarray, cap_z: np.ndarray, cap_h: np.ndarray, cap_d: np.ndarray,
                     avail_g: np.ndarray, avail_z: np.ndarray, avail_h: np.ndarray,
                     avail_d: np.ndarray,
                     tb_g: np.ndarray, tb_z: np.ndarray, tb_h: np.ndarray,
                     tb_d: np.ndarray) -> int:
    """Pure twin of ``_native.builder.move_replicas`` (see module docstring)."""
    R = assign.shape[0]
    G, Z, H, D = len(cap_g), len(cap_z), len(cap_h), len(cap_d)
    if G == 0 or D == 0 or R > 64:
        return 0
    zs, hs, ds = zone_start.tolist(), host_start.tolist(), dev_start.tolist()
    dh, hz, zr = dev_host.tolist(), host_zone.tolist(), zone_region.tolist()
    capg, capz, caph, capd = cap_g.tolist(), cap_z.tolist(), cap_h.tolist(), cap_d.tolist()
    ag, az, ah, ad = avail_g.tolist(), avail_z.tolist(), avail_h.tolist(), avail_d.tolist()
    tbg, tbz, tbh, tbd = tb_g.tolist(), tb_z.tolist(), tb_h.tolist(), tb_d.tolist()
    ex = excess.tolist()
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
            h = dh[d]
            z = hz[h]
            g = zr[z]
            cd[d] -= 1
            ch[h] -= 1
            cz[z] -= 1
            cg[g] -= 1
            g = _choose_wanting(0, G, cg, capg, ag, tbg)
            z = _choose_wanting(zs[g], zs[g + 1], cz, capz, az, tbz) if g >= 0 else -1
            h = _choose_wanting(hs[z], hs[z + 1], ch, caph, ah, tbh) if z >= 0 else -1
            nd = _choose_wanting(ds[h], ds[h + 1], cd, capd, ad, tbd) if h >= 0 else -1
            if nd < 0 or nd == d:
                nd = d
                h = dh[d]
                z = hz[h]
                g = zr[z]
            else:
                col[r] = nd
                ex[d] -= 1
                ex[nd] += 1
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
    excess[:] = ex
    return moved


def _select() -> tuple[Callable[..., int], Callable[..., int]]:
    global _warned
    if os.environ.get("RINGSTACK_PUREPYTHON", "") not in ("", "0"):
        return place_replicas_py, move_replicas_py
    try:
        from _native import builder as native
    except ImportError:
        if not _warned:
            _warned = True
            print("ringstack: _native.builder not built; using the pure-Python builder twins",
                  file=sys.stderr)
        return place_replicas_py, move_replicas_py
    return native.place_replicas, native.move_replicas


place_replicas: Callable[..., Any]
move_replicas: Callable[..., Any]
place_replicas, move_replicas = _select()
NATIVE = place_replicas is not place_replicas_py
