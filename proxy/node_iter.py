"""Which nodes a request talks to: primaries first, then handoffs.

Rules (Swift's ``NodeIter`` and ``error_limit``):

- ``ErrorLimiter`` counts errors per device (``address:port/device``). A
  device with more than ``limit`` errors within ``interval`` seconds of its
  last error is skipped until ``interval`` has passed since that last error.
  A 507 (drive unmounted or full) error-limits the device at once.
  The clock is injected (``time.monotonic`` by default), so simulations run
  it on a mock clock.
- ``NodeIter`` yields the primaries that are not error-limited, then handoffs
  from the ring's handoff iterator, up to ``max_nodes`` in all. Each skipped
  primary is thereby replaced by a handoff (invariant 1: a write still lands
  on W drives when a primary is out). When every primary is error-limited the
  limited ones are still tried after the handoffs rather than failing with no
  node at all (a limited node may have recovered).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ring.ringfile import RingDevice


def node_key(node: RingDevice) -> str:
    return f"{node.address}:{node.port}/{node.device}"


@dataclass(slots=True)
class _Errors:
    count: int = 0
    last: float = 0.0


@dataclass
class ErrorLimiter:
    """Per-device error counts with a cool-down (see module rules)."""

    limit: int = 10
    interval: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _errors: dict[str, _Errors] = field(default_factory=dict)

    def error_occurred(self, node: RingDevice) -> None:
        now = self.clock()
        e = self._errors.get(node_key(node))
        if e is None or now - e.last > self.interval:
            e = _Errors()
            self._errors[node_key(node)] = e
        e.count += 1
        e.last = now

    def limit_now(self, node: RingDevice) -> None:
        """Error-limit at once (a 507: the drive is gone or full)."""
        self._errors[node_key(node)] = _Errors(self.limit + 1, self.clock())

    def success(self, node: RingDevice) -> None:
        """A good answer does not clear the count (Swift does not either),
        but an expired record is dropped to keep the table small."""
        key = node_key(node)
        e = self._errors.get(key)
        if e is not None and self.clock() - e.last > self.interval:
            del self._errors[key]

    def is_limited(self, node: RingDevice) -> bool:
        e = self._errors.get(node_key(node))
        if e is None:
            return False
        if self.clock() - e.last > self.interval:
            del self._errors[node_key(node)]
            return False
        return e.count > self.limit

    def limited_count(self) -> int:
        return sum(1 for k, e in list(self._errors.items()) if e.count > self.limit and self.clock() - e.last <= self.interval)


class NodeIter:
    """Primaries (minus error-limited) then handoffs, at most ``max_nodes``.

    ``next_node()`` hands out one node at a time (None when exhausted), which
    is how PUT replaces a primary that refused a connection; iterating gives
    the same sequence."""

    def __init__(
        self,
        primaries: list[RingDevice],
        handoffs: Iterable[RingDevice],
        limiter: ErrorLimiter | None = None,
        max_nodes: int | None = None,
    ) -> None:
        self.primaries = primaries
        self._limiter = limiter
        self._max = max_nodes if max_nodes is not None else 2 * len(primaries)
        self._gen = self._walk(handoffs)
        self.handed_out = 0
        self.skipped: list[RingDevice] = []

    def _limited(self, node: RingDevice) -> bool:
        return self._limiter is not None and self._limiter.is_limited(node)

    def _walk(self, handoffs: Iterable[RingDevice]) -> Iterator[RingDevice]:
        seen: set[int] = set()
        for node in self.primaries:
            seen.add(node.id)
            if self._limited(node):
                self.skipped.append(node)
                continue
            yield node
        for node in handoffs:
            if node.id in seen:
                continue
            seen.add(node.id)
            if self._limited(node):
                self.skipped.append(node)
                continue
            yield node
        # Everything left is error-limited: try those rather than nothing.
        yield from list(self.skipped)

    def next_node(self) -> RingDevice | None:
        if self.handed_out >= self._max:
            return None
        node = next(self._gen, None)
        if node is not None:
            self.handed_out += 1
        return node

    def __iter__(self) -> Iterator[RingDevice]:
        while True:
            node = self.next_node()
            if node is None:
                return
            yield node

    def is_primary(self, node: RingDevice) -> bool:
        return any(p.id == node.id for p in self.primaries)
