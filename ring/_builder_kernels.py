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
  seeded tie-break key (splitmix64 of ``salt``, partition, replica, tier), so
  equally wanting drives are picked in a different order for every partition
  and a drive's partners are spread over many drives. If no child is under its cap, fall back to the
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
  tier on the way) without breaking any tier cap; otherwise it stays. It
  leaves its region/zone/host only if that tier holds more than its target
  (``tex_* > 0``: count minus the sum of its drives' targets), and then for
  the most wanting tier (``tex < 0``). So every move strictly improves
  balance, never hurts dispersion, and no move undoes another tier's balance.
- Moving a non-free slot sets it free and clears ``can_move`` (one move per
  partition per rebalance, invariant 8). ``excess`` and ``avail`` are kept
  up to date; returns the number of moves.

Contract of ``gather_dispersion(assign, parts, can_move, excess, ...)``:

- Visits ``parts`` in order; while the partition has a replica in a tier
  above its cap, unassigns (-1) the one on the most overfull drive, if the
  partition ``can_move`` (which it then clears) or the replica shares its
  drive with another replica of the partition (always fixed, whatever the
  clock says). Decrements ``excess``; returns the number unassigned.

Contract of ``tier_excess(assign, ..., lim_g, lim_z, lim_h, lim_d)``:

- Per partition, for each level, the replicas above each tier's limit
  summed over the partition's tiers; returns int32 [partitions] of the worst
  level (Swift's per-partition dispersion risk). -1 slots are ignored.

Selection: the kernel from ``_native.builder`` unless ``RINGSTACK_PUREPYTHON=1``
or it is not built (then a one-line warning on stderr, once).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from ring._builder_twins import (
    gather_dispersion_py,
    move_replicas_py,
    place_replicas_py,
    tier_excess_py,
)

__all__ = [
    "NATIVE", "gather_dispersion", "gather_dispersion_py", "move_replicas", "move_replicas_py",
    "place_replicas", "place_replicas_py", "tier_excess", "tier_excess_py",
]

_warned = False


def _select() -> tuple[Callable[..., Any], ...]:
    global _warned
    twins = (place_replicas_py, move_replicas_py, gather_dispersion_py, tier_excess_py)
    if os.environ.get("RINGSTACK_PUREPYTHON", "") not in ("", "0"):
        return twins
    try:
        from _native import builder as native
    except ImportError:
        if not _warned:
            _warned = True
            print("ringstack: _native.builder not built; using the pure-Python builder twins",
                  file=sys.stderr)
        return twins
    return native.place_replicas, native.move_replicas, native.gather_dispersion, native.tier_excess


place_replicas: Callable[..., Any]
move_replicas: Callable[..., Any]
gather_dispersion: Callable[..., Any]
tier_excess: Callable[..., Any]
place_replicas, move_replicas, gather_dispersion, tier_excess = _select()
NATIVE = place_replicas is not place_replicas_py
