"""The ring builder: partitions -> replicas -> drives, by weight and failure domain.

Contract (invariant 8, DESIGN.md: "Ring rebalances move as few partitions as
the weights allow, and never two replicas of one partition into one failure
domain while another domain has room"):

- State: ``replica2part2dev`` (int32 [replicas][2**part_power] of drive ids,
  -1 = unassigned) and ``last_moved`` (float64 [partitions], the ``now`` of
  the rebalance that last moved each partition; -inf = never).
- ``rebalance(inventory, now)`` takes weights and failure domains from the
  inventory at that moment. Drives that are gone from the inventory lose
  their replicas at once (their partitions get new homes regardless of
  ``min_part_hours``); drives of weight 0 are drained as the clock allows.
  Apart from those, a partition moves at most one replica per rebalance and
  never within ``min_part_hours`` of its last move. Replicas move only to
  fix dispersion (a tier above its cap in the replica plan) or balance (a
  drive above its target), so adding drives moves about the added share.
- Targets follow Swift's replica plan (weighted, wanted, overload; see
  ``ring._builder_plan``). The per-partition placement loop runs in Cython
  (``_native.builder``) or its pure twin.
- Deterministic: the same inventory, history of calls and ``seed`` give the
  same ring. No I/O, no clock (``now`` is passed in; ``timer`` only measures
  the report's duration).
- ``validate`` raises :class:`RingValidationError`; ``rebalance`` validates
  its own result before returning.

How a rebalance runs (all vectorised numpy, the per-partition loops in the
kernels of ``_native/builder.pyx``):

1. plan: per-tier targets and per-partition caps, and an integer number of
   partition-replicas per drive (``ring._builder_plan``);
2. replicas on removed drives become unassigned;
3. dispersion: partitions with a tier above its cap shed a replica, from the
   most overfull drive first (``gather_dispersion``);
4. place every unassigned replica, most constrained partitions first, each
   into the most wanting tier under its cap (``place_replicas``);
5. balance: passes over the partitions move single replicas from overfull to
   wanting drives, leaving a tier only when that tier is above its target
   (``move_replicas``) - no move is wasted, which is why adding drives moves
   about the added share and removing one moves about what it held;
6. when no single move helps and drives are still overfull, shed at random
   and re-place (Swift's "forced" gather), kept only if it reduces overfill.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ring import _builder_kernels
from ring._builder_gather import (
    balance_of,
    constraint_score,
    dispersion_of,
    gather_for_balance,
    undispersed,
)
from ring._builder_plan import RingValidationError, Topology, make_plan, max_replicas, topology
from ring.inventory import Inventory

__all__ = ["RebalanceReport", "RingBuilder", "RingValidationError", "balance", "dispersion"]

MAX_PART_POWER = 24
MAX_ROUNDS = 8
MAX_FORCED = 4
_CHUNKS = 16


@dataclass(frozen=True, slots=True)
class RebalanceReport:
    """What a rebalance did. ``moved`` counts partition-replicas whose drive changed."""

    moved: int
    moved_fraction: float
    balance: float
    dispersion: float
    duration: float
    rounds: int = 0


class RingBuilder:
    """One ring's assignment state; see the module docstring for the contract."""

    def __init__(self, part_power: int, replicas: int = 3, min_part_hours: float = 1,
                 overload: float = 0.0, seed: int = 0,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        if isinstance(part_power, bool) or not isinstance(part_power, int) or not (
            0 <= part_power <= MAX_PART_POWER
        ):
            raise RingValidationError(f"part_power must be an integer 0..{MAX_PART_POWER}")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise RingValidationError("replicas must be an integer >= 1")
        if not (isinstance(min_part_hours, int | float) and math.isfinite(min_part_hours)
                and min_part_hours >= 0):
            raise RingValidationError("min_part_hours must be a number >= 0")
        if not (isinstance(overload, int | float) and math.isfinite(overload) and overload >= 0):
            raise RingValidationError("overload must be a number >= 0")
        self.part_power = part_power
        self.replicas = replicas
        self.min_part_hours = min_part_hours
        self.overload = float(overload)
        self.seed = int(seed)
        self.rebalances = 0
        self.last_rebalance_at: float | None = None
        self.replica2part2dev = np.full((replicas, 1 << part_power), -1, dtype=np.int32)
        self.last_moved = np.full(1 << part_power, -np.inf, dtype=np.float64)
        self._timer = timer

    @property
    def parts(self) -> int:
        return 1 << self.part_power

    def ever_rebalanced(self) -> bool:
        return self.rebalances > 0

    def pretend_min_part_hours_passed(self) -> None:
        """Let every partition move at the next rebalance (Swift's escape hatch)."""
        self.last_moved[:] = -np.inf

    # -- persistence (used by ring.builderfile) ------------------------------

    def params(self) -> dict[str, Any]:
        return {
            "part_power": self.part_power,
            "replicas": self.replicas,
            "min_part_hours": self.min_part_hours,
            "overload": self.overload,
            "seed": self.seed,
            "rebalances": self.rebalances,
            "last_rebalance_at": self.last_rebalance_at,
        }

    @classmethod
    def from_state(cls, params: dict[str, Any], replica2part2dev: np.ndarray,
                   last_moved: np.ndarray) -> RingBuilder:
        b = cls(int(params["part_power"]), int(params["replicas"]), params["min_part_hours"],
                float(params["overload"]), int(params["seed"]))
        if replica2part2dev.shape != b.replica2part2dev.shape or last_moved.shape != (b.parts,):
            raise RingValidationError("builder arrays do not match part_power/replicas")
        b.replica2part2dev = np.ascontiguousarray(replica2part2dev, dtype=np.int32)
        b.last_moved = np.ascontiguousarray(last_moved, dtype=np.float64)
        b.rebalances = int(params.get("rebalances", 0))
        b.last_rebalance_at = params.get("last_rebalance_at")
        return b

    # -- figures -------------------------------------------------------------

    def _topology(self, inventory: Inventory) -> Topology:
        return topology(inventory, int(self.replica2part2dev.max(initial=-1)) + 1)

    def dev_counts(self) -> dict[int, int]:
        """Partition-replicas per drive id (only ids that hold some)."""
        a = self.replica2part2dev
        ids, counts = np.unique(a[a >= 0], return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist(), strict=True))

    def balance(self, inventory: Inventory) -> float:
        """Swift's balance in percent (see ``ring._builder_gather.balance_of``)."""
        topo = self._topology(inventory)
        a = self.replica2part2dev
        dense = topo.dense(a)
        if ((a >= 0) & (dense < 0)).any():
            return 999.99  # replicas on removed drives
        counts = np.bincount(dense[dense >= 0], minlength=len(topo.dev_ids))
        return balance_of(counts, topo.weights, self.replicas * self.parts)

    def dispersion(self, inventory: Inventory) -> float:
        """Swift's dispersion in percent (0 = every partition as spread as the tiers allow)."""
        topo = self._topology(inventory)
        return dispersion_of(topo.dense(self.replica2part2dev), topo,
                             max_replicas(topo, self.replicas, "ceil"))

    # -- validation ----------------------------------------------------------

    def validate(self, inventory: Inventory) -> None:
        """Raise :class:`RingValidationError` unless the ring is usable.

        Every replica assigned, to a drive that exists in the inventory (a
        weight-0 drive may still hold replicas while it drains), and no
        partition with two replicas on one drive.
        """
        a = self.replica2part2dev
        if a.shape != (self.replicas, self.parts) or a.dtype != np.int32:
            raise RingValidationError(f"replica table has shape {a.shape} dtype {a.dtype}")
        if self.last_moved.shape != (self.parts,):
            raise RingValidationError("last_moved does not match the partition count")
        if (a < 0).any():
            r, p = np.argwhere(a < 0)[0]
            raise RingValidationError(f"partition {p} replica {r} is not assigned to a drive")
        topo = self._topology(inventory)
        bad = topo.dense(a) < 0
        if bad.any():
            r, p = np.argwhere(bad)[0]
            raise RingValidationError(
                f"partition {p} replica {r} is on drive {a[r, p]}, which is not in the inventory")
        if self.replicas > 1:
            s = np.sort(a, axis=0)
            dup = (s[1:] == s[:-1]).any(axis=0)
            if dup.any():
                p = int(np.flatnonzero(dup)[0])
                raise RingValidationError(
                    f"partition {p} has two replicas on one drive: {a[:, p].tolist()}")

    # -- rebalance -----------------------------------------------------------

    def rebalance(self, inventory: Inventory, now: float,
                  progress: Callable[[float], None] | None = None) -> RebalanceReport:
        """Move as few replicas as the inventory's weights allow; see the module docstring.

        ``now`` is in seconds (same clock as earlier calls); ``progress`` is
        called with fractions in [0, 1]. On error the builder is unchanged.
        """
        t0 = self._timer()
        tick = progress or (lambda _f: None)
        tick(0.0)
        topo = self._topology(inventory)
        R, N = self.replicas, self.parts
        old = self.replica2part2dev
        start = topo.dense(old)  # dense, -1 for unassigned or removed drives
        plan = make_plan(topo, R, N, self.overload,
                         np.bincount(start[start >= 0], minlength=len(topo.dev_ids)))
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, self.rebalances])
        A = start.copy()
        # one voluntary move per partition per rebalance, none within min_part_hours
        can_move = (self.last_moved + self.min_part_hours * 3600.0 <= now)
        can_move &= ~((old >= 0) & (start < 0)).any(axis=0)  # already moving off a removed drive
        counts = np.bincount(A[A >= 0], minlength=len(topo.dev_ids)).astype(np.int64)
        excess = counts - plan.dev_parts
        kernel = self._kernel_args(topo, plan, rng)
        caps = (kernel["cap_g"], kernel["cap_z"], kernel["cap_h"], kernel["cap_d"])
        can_move8 = can_move.astype(np.int8)
        if (A >= 0).any():
            parts = np.flatnonzero(undispersed(A, topo, caps)).astype(np.int32)
            _builder_kernels.gather_dispersion(
                A, parts[rng.permutation(len(parts))], can_move8, excess,
                *(kernel[k] for k in ("dev_host", "host_zone", "zone_region")), *caps)
        tick(0.05)
        self._place(A, topo, plan, kernel, rng, tick)
        rounds = 0

        def settle() -> np.ndarray:
            """Move passes until nothing is overfull or no single move helps."""
            nonlocal rounds
            while True:
                excess: np.ndarray = (np.bincount(A[A >= 0], minlength=len(topo.dev_ids))
                                      - plan.dev_parts).astype(np.int64)
                if not (excess > 0).any() or rounds >= MAX_ROUNDS:
                    return excess
                rounds += 1
                avail = self._avail(topo, np.maximum(-excess, 0))
                tex = [np.bincount(topo.tier[level], weights=excess, minlength=topo.sizes[level])
                       .astype(np.int64) for level in range(3)]
                moved_now = _builder_kernels.move_replicas(
                    A, np.roll(np.arange(N, dtype=np.int32), -int(rng.integers(0, N))),
                    np.not_equal(A, start).astype(np.int8),
                    can_move8, excess, *tex, avail_g=avail[0], avail_z=avail[1],
                    avail_h=avail[2], avail_d=avail[3],
                    **{k: v for k, v in kernel.items() if not k.startswith("nact")})
                if not moved_now:
                    return excess

        excess = settle()
        for _ in range(MAX_FORCED):
            over = int(excess[excess > 0].sum())
            if not over:
                break
            # stuck: shed at random and re-place (Swift's "forced" gather); keep it only
            # if it leaves less overfill, since every forced move costs movement
            snapshot = (A.copy(), can_move8.copy())
            cm = can_move8.astype(bool)
            if not gather_for_balance(A, excess, np.not_equal(A, start), cm, rng):
                break
            can_move8 = cm.astype(np.int8)
            self._place(A, topo, plan, kernel, rng, None)
            excess = settle()
            if int(excess[excess > 0].sum()) >= over:
                A[:], can_move8 = snapshot
                break
        tick(0.95)
        counts = np.bincount(A[A >= 0], minlength=len(topo.dev_ids)).astype(np.int64)
        final = topo.dev_ids[np.where(A >= 0, A, 0)].astype(np.int32)
        final[A < 0] = -1
        changed = final != old
        new_builder_state = final
        self.replica2part2dev = new_builder_state
        try:
            self.validate(inventory)
        except RingValidationError:
            self.replica2part2dev = old
            raise
        self.last_moved[changed.any(axis=0)] = now
        self.rebalances += 1
        self.last_rebalance_at = now
        moved_n = int(changed.sum())
        report = RebalanceReport(
            moved=moved_n,
            moved_fraction=moved_n / (R * N),
            balance=balance_of(counts, topo.weights, R * N),
            dispersion=dispersion_of(A, topo, max_replicas(topo, R, "ceil")),
            duration=self._timer() - t0,
            rounds=rounds,
        )
        tick(1.0)
        return report

    @staticmethod
    def _kernel_args(topo: Topology, plan: Any, rng: np.random.Generator) -> dict[str, Any]:
        i32 = np.int32
        return {
            "zone_start": topo.start[0].astype(i32),
            "host_start": topo.start[1].astype(i32),
            "dev_start": topo.start[2].astype(i32),
            "dev_host": topo.parent[3].astype(i32),
            "host_zone": topo.parent[2].astype(i32),
            "zone_region": topo.parent[1].astype(i32),
            "cap_g": plan.cap[0].astype(i32),
            "cap_z": plan.cap[1].astype(i32),
            "cap_h": plan.cap[2].astype(i32),
            "cap_d": np.where(topo.active, np.minimum(plan.cap[3], 1), 0).astype(i32),
            "nact_g": topo.nactive[0].astype(i32),
            "nact_z": topo.nactive[1].astype(i32),
            "nact_h": topo.nactive[2].astype(i32),
            "salt": int(rng.integers(0, 1 << 63)),
        }

    @staticmethod
    def _avail(topo: Topology, want: np.ndarray) -> list[np.ndarray]:
        """Per-tier sums of what active drives still want (Swift's parts_available_in_tier)."""
        want = np.where(topo.active, want, 0)
        return [np.bincount(topo.tier[level], weights=want, minlength=topo.sizes[level])
                .astype(np.int64) for level in range(4)]

    def _place(self, A: np.ndarray, topo: Topology, plan: Any, kernel: dict[str, Any],
               rng: np.random.Generator, tick: Callable[[float], None] | None) -> None:
        """Place every unassigned replica."""
        todo = np.flatnonzero((A < 0).any(axis=0)).astype(np.int32)
        if not len(todo):
            return
        # ascending partitions (cache friendly; the seeded tie-breaks already vary the
        # choices per partition), the most constrained first
        if (A[:, todo] >= 0).any():
            caps = (kernel["cap_g"], kernel["cap_z"], kernel["cap_h"], kernel["cap_d"])
            score = constraint_score(A[:, todo], topo, caps)
            todo = todo[np.argsort(-score, kind="stable")]
        counts = np.bincount(A[A >= 0], minlength=len(topo.dev_ids)).astype(np.int64)
        avail = self._avail(topo, np.maximum(plan.dev_parts - counts, 0))
        chunks = np.array_split(todo, _CHUNKS) if tick and len(todo) > 65536 else [todo]
        for i, chunk in enumerate(chunks):
            rc = _builder_kernels.place_replicas(
                A, np.ascontiguousarray(chunk), avail_g=avail[0], avail_z=avail[1],
                avail_h=avail[2], avail_d=avail[3], **kernel)
            if rc < 0:
                raise RingValidationError(f"no drive can take a replica of partition {-rc - 1}")
            if tick:
                tick(0.05 + 0.8 * (i + 1) / len(chunks))

def balance(builder: RingBuilder, inventory: Inventory) -> float:
    return builder.balance(inventory)


def dispersion(builder: RingBuilder, inventory: Inventory) -> float:
    return builder.dispersion(inventory)
