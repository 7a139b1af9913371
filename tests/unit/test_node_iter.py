"""Primaries then handoffs, and error limiting on an injected clock (proxy/node_iter.py)."""

from __future__ import annotations

from proxy.node_iter import ErrorLimiter, NodeIter
from ring.ringfile import RingDevice


def dev(i: int) -> RingDevice:
    return RingDevice(i, f"h{i}", 1, i, "127.0.0.1", 6000 + i, f"d{i}", 1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_primaries_then_handoffs_up_to_max() -> None:
    it = NodeIter([dev(0), dev(1), dev(2)], (dev(i) for i in range(3, 10)), None, max_nodes=5)
    assert [d.id for d in it] == [0, 1, 2, 3, 4]


def test_handoffs_skip_primaries_and_duplicates() -> None:
    it = NodeIter([dev(0), dev(1)], [dev(1), dev(3), dev(3), dev(4)], None, max_nodes=10)
    assert [d.id for d in it] == [0, 1, 3, 4]


def test_error_limited_primary_is_replaced_and_recovers_after_cooldown() -> None:
    clock = Clock()
    lim = ErrorLimiter(limit=2, interval=60.0, clock=clock)
    for _ in range(3):
        lim.error_occurred(dev(1))
    assert lim.is_limited(dev(1))
    it = NodeIter([dev(0), dev(1), dev(2)], [dev(5), dev(6)], lim, max_nodes=3)
    assert [d.id for d in it] == [0, 2, 5]
    clock.now += 61
    assert not lim.is_limited(dev(1))
    it = NodeIter([dev(0), dev(1), dev(2)], [dev(5)], lim, max_nodes=3)
    assert [d.id for d in it] == [0, 1, 2]


def test_errors_below_limit_or_spread_out_do_not_limit() -> None:
    clock = Clock()
    lim = ErrorLimiter(limit=2, interval=10.0, clock=clock)
    lim.error_occurred(dev(0))
    lim.error_occurred(dev(0))
    assert not lim.is_limited(dev(0))
    clock.now += 11  # the count restarts after a quiet interval
    lim.error_occurred(dev(0))
    lim.error_occurred(dev(0))
    assert not lim.is_limited(dev(0))


def test_507_limits_at_once() -> None:
    clock = Clock()
    lim = ErrorLimiter(limit=10, interval=60.0, clock=clock)
    lim.limit_now(dev(2))
    assert lim.is_limited(dev(2)) and not lim.is_limited(dev(1))


def test_all_limited_still_tries_something() -> None:
    lim = ErrorLimiter(limit=0, interval=60.0, clock=Clock())
    for i in range(3):
        lim.error_occurred(dev(i))
    it = NodeIter([dev(0), dev(1), dev(2)], [], lim, max_nodes=6)
    assert [d.id for d in it] == [0, 1, 2]


def test_next_node_hands_out_one_at_a_time() -> None:
    it = NodeIter([dev(0)], [dev(1)], None, max_nodes=2)
    assert it.next_node().id == 0
    assert it.next_node().id == 1
    assert it.next_node() is None
    assert it.is_primary(dev(0)) and not it.is_primary(dev(1))
