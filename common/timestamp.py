"""Timestamps, as Swift writes them: ``1700000000.12345`` with an optional
``_<offset hex>`` tie-breaker. Internally a timestamp is an int of 10-microsecond
ticks plus an offset, so comparisons are exact (invariant 2: last write wins by
timestamp).

``TimestampSource`` is the proxy's clock discipline: strictly increasing per
process, never behind the highest timestamp it has seen, even when the wall
clock steps back. It takes the clock as a parameter (injected world).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import total_ordering

TICKS_PER_SECOND = 100_000


class TimestampError(ValueError):
    status = 400


@total_ordering
@dataclass(frozen=True, slots=True)
class Timestamp:
    ticks: int  # units of 10 microseconds since the epoch
    offset: int = 0

    @classmethod
    def from_seconds(cls, seconds: float, offset: int = 0) -> Timestamp:
        return cls(int(round(seconds * TICKS_PER_SECOND)), offset)

    @classmethod
    def parse(cls, value: str | bytes) -> Timestamp:
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        text = value.strip()
        offset = 0
        if "_" in text:
            text, _, off = text.partition("_")
            try:
                offset = int(off, 16)
            except ValueError as exc:
                raise TimestampError(f"bad timestamp offset: {value!r}") from exc
        try:
            whole, _, frac = text.partition(".")
            if not whole.isdigit() or (frac and not frac.isdigit()):
                raise ValueError(value)
            frac = (frac + "00000")[:5]
            ticks = int(whole) * TICKS_PER_SECOND + int(frac or "0")
        except ValueError as exc:
            raise TimestampError(f"bad timestamp: {value!r}") from exc
        return cls(ticks, offset)

    @property
    def seconds(self) -> float:
        return self.ticks / TICKS_PER_SECOND

    @property
    def normal(self) -> str:
        """``0000001700000000.12345``: fixed width, sorts as text."""
        return f"{self.ticks // TICKS_PER_SECOND:010d}.{self.ticks % TICKS_PER_SECOND:05d}"

    @property
    def internal(self) -> str:
        """The normal form plus ``_<16 hex>`` when there is an offset."""
        if self.offset:
            return f"{self.normal}_{self.offset:016x}"
        return self.normal

    def __str__(self) -> str:
        return self.internal

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Timestamp):
            return NotImplemented
        return (self.ticks, self.offset) < (other.ticks, other.offset)


class TimestampSource:
    """Issues strictly increasing timestamps (DESIGN: assigned by the proxy,
    strictly increasing per proxy). ``observe`` raises the floor to any
    timestamp seen from storage nodes, so a proxy whose clock is behind never
    writes behind what it has seen (invariant 2)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = 0

    def observe(self, ts: Timestamp) -> None:
        if ts.ticks > self._last:
            self._last = ts.ticks

    def next(self) -> Timestamp:
        ticks = int(self._clock() * TICKS_PER_SECOND)
        if ticks <= self._last:
            ticks = self._last + 1
        self._last = ticks
        return Timestamp(ticks)
