"""Quorum decisions: sans-I/O, statuses and timestamps in, decisions out.

Rules (DESIGN, invariants 1 and 2):

- ``quorum_size(n)`` is a majority of the replicas; W defaults to it, R to 1.
- A status class (2xx, 3xx, 4xx) "has quorum" when at least ``quorum`` of the
  answers fall in it; 5xx, timeouts and connection errors never count towards
  a quorum (Swift's ``have_quorum`` / ``best_response``). No class with quorum
  means 503: the outcome is unknown, never "definitely not stored".
- A write is acknowledged only when W nodes answered 2xx (invariant 1); a
  409 on PUT/POST means superseded by a newer write (``write_outcome``).
- Never answer 404 unless absence is proven: a tombstone newer than every
  success seen, or a quorum of 404s and no success (invariant 2).
- Reads with R > 1 serve the newest replica (by ``X-Backend-Timestamp``) and
  plan repairs for every answered replica that is older or missing.

Nothing here imports trio, reads a clock or touches a socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from common.timestamp import Timestamp

ONE, QUORUM, ALL = "one", "quorum", "all"
LEVELS = (ONE, QUORUM, ALL)


class ConsistencyError(ValueError):
    """An ``X-Consistency`` value that is not one|quorum|all."""

    status = 400


def quorum_size(n: int) -> int:
    """A majority of ``n`` replicas (at least 1)."""
    return max(1, n // 2 + 1)


def replicas_for(level: str, n: int) -> int:
    """How many replicas a consistency level needs out of ``n``."""
    if level == ONE:
        return 1
    if level == QUORUM:
        return quorum_size(n)
    if level == ALL:
        return n
    raise ConsistencyError(f"X-Consistency must be one of {', '.join(LEVELS)}, got {level!r}")


def parse_consistency(value: str | None, default: str) -> str:
    if value is None or value == "":
        return default
    level = value.strip().lower()
    if level not in LEVELS:
        raise ConsistencyError(f"X-Consistency must be one of {', '.join(LEVELS)}, got {value!r}")
    return level


def status_class(status: int | None) -> int | None:
    """100-style class of an answer; None for errors (5xx, timeout, no answer)."""
    if status is None or status >= 500 or status < 100:
        return None
    return status // 100 * 100


def have_quorum(statuses: Sequence[int | None], n: int, quorum: int | None = None) -> bool:
    """True when one status class (1xx..4xx) already has ``quorum`` answers."""
    q = quorum_size(n) if quorum is None else quorum
    if len(statuses) < q:
        return False
    counts: dict[int, int] = {}
    for s in statuses:
        c = status_class(s)
        if c is not None:
            counts[c] = counts.get(c, 0) + 1
    return any(v >= q for v in counts.values())


def best_response(statuses: Sequence[int | None], quorum: int) -> int | None:
    """Index of the answer to relay, like Swift's ``best_response``: the
    highest status of the first class (2xx, then 3xx, then 4xx) with at least
    ``quorum`` answers; None when no class has quorum (the caller answers 503)."""
    for hundred in (200, 300, 400):
        members = [(s, i) for i, s in enumerate(statuses) if s is not None and hundred <= s < hundred + 100]
        if len(members) >= quorum:
            # max status; on ties the earliest answer (the first primary)
            best = max(members, key=lambda m: (m[0], -m[1]))
            return best[1]
    return None


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    status: int
    reason: str


def _status_with_quorum(statuses: Sequence[int | None], quorum: int) -> int | None:
    """Index of the first answer whose exact 4xx status ``quorum`` nodes gave."""
    for i, s in enumerate(statuses):
        if s is not None and 400 <= s < 500 and statuses.count(s) >= quorum:
            return i
    return None


def write_outcome(statuses: Sequence[int | None], n: int, w: int, success: int = 201,
                  superseded_accepted: bool = True) -> WriteOutcome:
    """The client's answer to a PUT, POST or DELETE fanned out to ``n`` nodes.

    ``statuses`` holds one entry per node tried (None: error/timeout).
    - 2xx from W nodes acknowledges with ``success`` (invariant 1).
    - With ``superseded_accepted`` (PUT, POST), 409 means a newer write
      already holds the object there: last write wins, so this write was
      superseded, not refused; 409s plus successes from W nodes answer 202,
      as Swift's proxy answers a PUT. A DELETE relays its 409.
    - Otherwise a 4xx: the exact status a quorum gave (two tombstones' 404
      beat one newer ``.meta``'s 409 for a POST racing a DELETE), else
      Swift's ``best_response`` over the 4xx class.
    - Anything else is 503: indeterminate, never "definitely not stored"."""
    ok = sum(1 for s in statuses if s is not None and 200 <= s < 300)
    if ok >= w:
        return WriteOutcome(success, "")
    conflicts = sum(1 for s in statuses if s == 409)
    if superseded_accepted and conflicts and conflicts + ok >= w:
        return WriteOutcome(202, "Accepted")
    q = quorum_size(n)
    idx = _status_with_quorum(statuses, q)
    if idx is None:
        idx = best_response(statuses, q)
    if idx is not None:
        s = statuses[idx]
        assert s is not None
        if s >= 400:
            return WriteOutcome(s, "")
    return WriteOutcome(503, f"only {ok} of the {w} replicas required acknowledged the write")


@dataclass(frozen=True, slots=True)
class ReplicaAnswer:
    """What one node said to a GET/HEAD. ``status`` None: error or timeout."""

    status: int | None
    timestamp: Timestamp | None = None  # X-Backend-Timestamp (newest of data/meta; tombstone's on 404)
    data_timestamp: Timestamp | None = None  # X-Backend-Data-Timestamp
    primary: bool = True  # False: a handoff standing in for a primary

    @property
    def found(self) -> bool:
        """The object exists there (2xx, or a conditional answer about it)."""
        return self.status is not None and (200 <= self.status < 300 or self.status in (304, 412, 416))

    @property
    def tombstone(self) -> bool:
        return self.status == 404 and self.timestamp is not None

    @property
    def answered(self) -> bool:
        return self.status is not None and self.status < 500 and self.status != 507


@dataclass(frozen=True, slots=True)
class ReadDecision:
    """``serve`` (index of the newest found replica), ``not_found`` (absence
    proven, index of the newest tombstone or None), or ``unavailable`` (503)."""

    kind: str
    index: int | None = None
    reason: str = ""


def newest(answers: Sequence[ReplicaAnswer]) -> int | None:
    """Index of the newest found replica or tombstone; found wins a tie."""
    best: int | None = None
    best_key: tuple[Timestamp, int] | None = None
    for i, a in enumerate(answers):
        if not (a.found or a.tombstone):
            continue
        ts = a.timestamp or Timestamp(0)
        key = (ts, 1 if a.found else 0)
        if best_key is None or key > best_key:
            best, best_key = i, key
    return best


def read_decision(answers: Sequence[ReplicaAnswer], n: int, r: int) -> ReadDecision:
    """Decide a read from the answers gathered so far (all of them: the shell
    asks the primaries, replacing failed ones with handoffs).

    R counts answers from primaries only, and so does the quorum of 404s: a
    handoff that never held the object proves nothing about it (invariant
    2). Data and tombstones count wherever they are found."""
    answered = [a for a in answers if a.answered and a.primary]
    if len(answered) < r:
        return ReadDecision("unavailable", None, f"{len(answered)} of {r} required primary replicas answered")
    idx = newest(answers)
    if idx is not None and answers[idx].found:
        return ReadDecision("serve", idx)
    if idx is not None:  # a tombstone newer than any success: deleted, proven
        return ReadDecision("not_found", idx)
    not_found = sum(1 for a in answered if a.status == 404)
    if not_found >= quorum_size(n):
        return ReadDecision("not_found", None)
    # Other 4xx from a quorum are relayed (e.g. 400 from every node).
    statuses = [a.status for a in answers]
    best = best_response(statuses, quorum_size(n))
    if best is not None and statuses[best] not in (None, 404):
        return ReadDecision("relay", best)
    return ReadDecision("unavailable", None, "absence not proven: too few replicas answered")


@dataclass(frozen=True, slots=True)
class Repair:
    """One stale replica and what it needs: ``put`` (data missing or older),
    ``post`` (only metadata older) or ``delete`` (a tombstone is newer)."""

    index: int
    action: str


def repair_plan(answers: Sequence[ReplicaAnswer], chosen: int) -> list[Repair]:
    """Which answered replicas lag the chosen (newest) one, and how to fix them
    (read repair). Replicas that did not answer are left to the replicator."""
    best = answers[chosen]
    if best.timestamp is None:
        return []
    out: list[Repair] = []
    for i, a in enumerate(answers):
        if i == chosen or not a.answered:
            continue
        if best.tombstone:
            if a.found and (a.timestamp is None or a.timestamp < best.timestamp):
                out.append(Repair(i, "delete"))
            continue
        if a.found:
            if a.timestamp is not None and a.timestamp >= best.timestamp:
                continue
            best_data = best.data_timestamp or best.timestamp
            a_data = a.data_timestamp or a.timestamp
            if a_data is not None and a_data >= best_data:
                out.append(Repair(i, "post"))
            else:
                out.append(Repair(i, "put"))
        elif a.status == 404 and (a.timestamp is None or a.timestamp < best.timestamp):
            out.append(Repair(i, "put"))
    return out
