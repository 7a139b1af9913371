"""Quorum decisions (proxy/quorum.py): invariants 1 and 2 as properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from common.timestamp import Timestamp
from proxy.quorum import (
    ReplicaAnswer,
    best_response,
    have_quorum,
    newest,
    parse_consistency,
    quorum_size,
    read_decision,
    repair_plan,
    replicas_for,
    write_outcome,
)

statuses = st.one_of(st.none(), st.sampled_from([200, 201, 202, 204, 304, 400, 404, 409, 412, 422, 499, 500, 503, 507]))
ns = st.integers(min_value=1, max_value=7)


def test_quorum_size_is_majority() -> None:
    assert [quorum_size(n) for n in range(1, 7)] == [1, 2, 2, 3, 3, 4]
    assert replicas_for("one", 3) == 1 and replicas_for("quorum", 3) == 2 and replicas_for("all", 3) == 3
    assert parse_consistency(None, "one") == "one" and parse_consistency("ALL", "one") == "all"


@given(st.lists(statuses, max_size=7), ns)
def test_have_quorum_matches_counting(sts: list[int | None], n: int) -> None:
    q = quorum_size(n)
    expected = any(
        sum(1 for s in sts if s is not None and s < 500 and s // 100 == c) >= q for c in (1, 2, 3, 4)
    )
    assert have_quorum(sts, n) == expected
    # errors never help reach a quorum
    assert have_quorum([*sts, None, 503, 507], n + 3, q) == have_quorum(sts, n, q)


@given(st.lists(statuses, min_size=1, max_size=7))
def test_best_response_picks_a_class_with_quorum(sts: list[int | None]) -> None:
    q = quorum_size(len(sts))
    idx = best_response(sts, q)
    if idx is None:
        assert not have_quorum(sts, len(sts))
    else:
        s = sts[idx]
        assert s is not None and s < 500
        same = [x for x in sts if x is not None and x // 100 == s // 100]
        assert len(same) >= q and s == max(same)
        # an earlier class with quorum would have been chosen
        for c in range(2, s // 100):
            assert sum(1 for x in sts if x is not None and x // 100 == c) < q


@given(st.lists(statuses, min_size=1, max_size=7), st.integers(min_value=1, max_value=7))
def test_put_acknowledged_only_with_w_successes(sts: list[int | None], w: int) -> None:
    """Invariant 1: a 2xx means at least W nodes acknowledged (or 409s prove newer data)."""
    out = write_outcome(sts, len(sts), w)
    ok = sum(1 for s in sts if s is not None and 200 <= s < 300)
    if out.status == 201:
        assert ok >= w
    elif 200 <= out.status < 300:
        assert out.status == 202 and ok + sts.count(409) >= w and 409 in sts
    if ok >= w:
        assert out.status == 201
    # errors alone never become a 4xx: indeterminate is 503
    if all(s is None or s >= 500 for s in sts):
        assert out.status == 503


def test_put_examples() -> None:
    assert write_outcome([201, 201, None], 3, 2).status == 201
    assert write_outcome([201, None, None], 3, 2).status == 503
    assert write_outcome([422, 422, 422], 3, 2).status == 422
    assert write_outcome([201, 507, 503], 3, 2).status == 503
    assert write_outcome([409, 409, 201], 3, 2).status == 202


def test_post_and_delete_examples() -> None:
    post = {"success": 202, "superseded_accepted": True}
    delete = {"success": 204, "superseded_accepted": False}
    # a POST older than a racing POST's .meta was superseded, not refused
    assert write_outcome([409, 409, 202], 3, 2, **post).status == 202
    # a POST racing a DELETE: two tombstones prove the object deleted; one
    # node's newer .meta (409) does not make the answer a conflict
    assert write_outcome([409, 404, 404], 3, 2, **post).status == 404
    assert write_outcome([404, 404, 202], 3, 2, **post).status == 404
    # a DELETE older than the data relays the conflict
    assert write_outcome([409, 409, 204], 3, 2, **delete).status == 409
    assert write_outcome([204, 204, None], 3, 2, **delete).status == 204
    assert write_outcome([204, None, 503], 3, 2, **delete).status == 503
    # no single 4xx status has quorum: Swift's best_response (highest of the class)
    assert write_outcome([400, 412, None], 3, 2, **delete).status == 412


@given(st.lists(statuses, min_size=1, max_size=7), st.integers(min_value=1, max_value=7), st.booleans())
def test_write_outcome_4xx_only_from_a_quorum_of_4xx(sts: list[int | None], w: int, superseded: bool) -> None:
    """A 4xx tells the client the write was not applied: it needs a quorum of
    4xx answers and fewer than W successes; a status that a quorum gave by
    itself is the one relayed."""
    out = write_outcome(sts, len(sts), w, success=204, superseded_accepted=superseded)
    ok = sum(1 for s in sts if s is not None and 200 <= s < 300)
    q = quorum_size(len(sts))
    if 400 <= out.status < 500:
        assert ok < w and sum(1 for s in sts if s is not None and 400 <= s < 500) >= q
        exact = [s for s in sts if s is not None and 400 <= s < 500 and sts.count(s) >= q]
        if exact:
            assert out.status == exact[0]
    if out.status == 202:
        assert superseded and 409 in sts


ts_st = st.builds(Timestamp, st.integers(min_value=1, max_value=50))


@st.composite
def answers(draw: st.DrawFn) -> list[ReplicaAnswer]:
    out = []
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        kind = draw(st.sampled_from(["ok", "missing", "tomb", "err"]))
        if kind == "ok":
            t = draw(ts_st)
            out.append(ReplicaAnswer(200, t, t))
        elif kind == "missing":
            out.append(ReplicaAnswer(404))
        elif kind == "tomb":
            out.append(ReplicaAnswer(404, draw(ts_st)))
        else:
            out.append(ReplicaAnswer(draw(st.sampled_from([None, 503, 507]))))
    # some answers come from handoffs standing in for primaries
    return [ReplicaAnswer(a.status, a.timestamp, a.data_timestamp, draw(st.booleans())) for a in out]


@given(answers(), st.integers(min_value=1, max_value=5))
def test_404_only_when_absence_is_proven(ans: list[ReplicaAnswer], r: int) -> None:
    """Invariant 2: 404 needs a tombstone newer than every success, or a quorum of 404s and no success."""
    n = len(ans)
    d = read_decision(ans, n, r)
    found = [a for a in ans if a.found]
    if d.kind == "not_found":
        if d.index is not None:
            tomb = ans[d.index]
            assert tomb.tombstone
            assert all(a.timestamp is not None and a.timestamp < tomb.timestamp for a in found)
        else:
            assert not found and sum(1 for a in ans if a.status == 404 and a.primary) >= quorum_size(n)
    if d.kind == "serve":
        chosen = ans[d.index]
        assert chosen.found
        assert all(a.timestamp <= chosen.timestamp for a in ans if a.found or a.tombstone)
    answered = sum(1 for a in ans if a.answered and a.primary)
    if answered < r:
        assert d.kind == "unavailable"


def test_read_examples() -> None:
    t1, t2 = Timestamp(1), Timestamp(2)
    # one node down, one stale: quorum serves the newest
    ans = [ReplicaAnswer(200, t1, t1), ReplicaAnswer(200, t2, t2), ReplicaAnswer(None)]
    assert read_decision(ans, 3, 2).index == 1
    assert read_decision(ans, 3, 3).kind == "unavailable"
    # a single 404 among errors is not proof of absence
    assert read_decision([ReplicaAnswer(404), ReplicaAnswer(None), ReplicaAnswer(503)], 3, 1).kind == "unavailable"
    assert read_decision([ReplicaAnswer(404), ReplicaAnswer(404), ReplicaAnswer(503)], 3, 1).kind == "not_found"
    # handoffs that never held it are no proof of absence, and do not count towards R
    handoff_404 = ReplicaAnswer(404, primary=False)
    assert read_decision([ReplicaAnswer(404), handoff_404, ReplicaAnswer(None)], 3, 1).kind == "unavailable"
    ans = [ReplicaAnswer(200, t1, t1), ReplicaAnswer(200, t1, t1, primary=False), ReplicaAnswer(None)]
    assert read_decision(ans, 3, 2).kind == "unavailable"
    assert read_decision(ans, 3, 1).kind == "serve"
    # a newer tombstone beats older data
    assert read_decision([ReplicaAnswer(200, t1, t1), ReplicaAnswer(404, t2)], 2, 1).kind == "not_found"


@given(answers())
def test_repair_plan_targets_only_lagging_answered_replicas(ans: list[ReplicaAnswer]) -> None:
    idx = newest(ans)
    if idx is None:
        return
    best = ans[idx]
    plan = repair_plan(ans, idx)
    targets = {r.index for r in plan}
    assert idx not in targets
    for r in plan:
        a = ans[r.index]
        assert a.answered
        if r.action == "delete":
            assert best.tombstone and a.found
        else:
            assert best.found
            assert a.timestamp is None or a.timestamp < best.timestamp
    for i, a in enumerate(ans):
        if i != idx and best.found and a.answered and (a.status == 404 or a.found) and (
            a.timestamp is None or a.timestamp < best.timestamp
        ):
            assert i in targets


def test_repair_post_only_when_data_is_current() -> None:
    d, m = Timestamp(1), Timestamp(2)
    ans = [ReplicaAnswer(200, m, d), ReplicaAnswer(200, d, d), ReplicaAnswer(404)]
    plan = repair_plan(ans, 0)
    assert [(r.index, r.action) for r in plan] == [(1, "post"), (2, "put")]
