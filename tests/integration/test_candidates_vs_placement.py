"""Differential conformance: ``GET /allocation_candidates`` on ringstack and on
OpenStack Placement 16, same random provider trees (nested, sharing, traits,
aggregates, allocations) built through the same API calls, same random
queries at random microversions. Status codes, allocation requests (as
sets, with mappings) and provider summaries must agree.

Needs OpenStack Placement in a venv (``$RINGSTACK_PLACEMENT_VENV`` or
/work/placement-venv, see benchmarks/bench_placement.py); without it the
module is skipped, since there is nothing to compare against.
"""

from __future__ import annotations

import os
import random
import subprocess
import uuid as uuidlib

import httpx
import pytest

from tests.support.procs import ringstack_argv, start_server

VENV = os.environ.get("RINGSTACK_PLACEMENT_VENV", "/work/placement-venv")
RUNNER = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "_placement_runner.py")
RCS = ["VCPU", "MEMORY_MB", "DISK_GB", "SRIOV_NET_VF", "CUSTOM_MAGIC"]
TRAITS = ["HW_CPU_X86_AVX2", "CUSTOM_A", "CUSTOM_B", "STORAGE_DISK_SSD"]
VERSIONS = ["1.10", "1.12", "1.17", "1.21", "1.22", "1.25", "1.28", "1.29", "1.31", "1.33",
            "1.34", "1.35", "1.36", "1.38", "1.39"]

SHARING: set[str] = set()  # sharing providers of every seed so far (the pair accumulates)
pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(VENV, "bin", "placement-manage")),
                                reason="OpenStack Placement is not installed to compare with")


def _placement(tmp) -> object:
    db = tmp / "placement.db"
    (tmp / "placement.conf").write_text(
        "[DEFAULT]\ndebug = False\n[api]\nauth_strategy = noauth2\n"
        f"[placement_database]\nconnection = sqlite:///{db}\n")
    subprocess.run([os.path.join(VENV, "bin", "placement-manage"), "--config-file",
                    str(tmp / "placement.conf"), "db", "sync"], check=True, capture_output=True)
    return start_server([os.path.join(VENV, "bin", "python"), RUNNER, str(tmp)], timeout=60)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("diff")  # one pair for every seed: they accumulate
    (tmp_path / "os").mkdir()
    theirs = _placement(tmp_path / "os")
    try:
        ours = start_server(ringstack_argv("serve", "placement", "--data", str(tmp_path / "rs"),
                                           "--port", "0", "--no-fsync"))
    except BaseException:
        theirs.kill()
        raise
    clients = [httpx.Client(base_url=s.url, timeout=60, headers={"x-auth-token": "admin"})
               for s in (ours, theirs)]
    try:
        yield clients
    finally:
        for c in clients:
            c.close()
        ours.kill()
        theirs.kill()


def _call(clients, method, path, version="1.39", **kw):
    rs = [c.request(method, path, headers={"openstack-api-version": f"placement {version}"},
                    **kw) for c in clients]
    assert rs[0].status_code == rs[1].status_code, (method, path, kw, rs[0].text, rs[1].text)
    return rs


def _scenario(clients, rng: random.Random, tag: str = "") -> dict:
    _call(clients, "PUT", "/resource_classes/CUSTOM_MAGIC", "1.7")
    for t in ("CUSTOM_A", "CUSTOM_B"):
        _call(clients, "PUT", f"/traits/{t}", "1.6")
    aggs = [str(uuidlib.UUID(int=rng.getrandbits(128))) for _ in range(2)]
    provs: list[tuple[str, str | None]] = []
    for _root in range(rng.randint(2, 4)):
        root = str(uuidlib.UUID(int=rng.getrandbits(128)))
        provs.append((root, None))
        for _ in range(rng.randint(0, 2)):
            child = str(uuidlib.UUID(int=rng.getrandbits(128)))
            provs.append((child, root))
            if rng.random() < 0.3:
                provs.append((str(uuidlib.UUID(int=rng.getrandbits(128))), child))
    sharing = rng.random() < 0.5
    if sharing:
        provs.append((str(uuidlib.UUID(int=rng.getrandbits(128))), "SHARING"))
    for k, (u, parent) in enumerate(provs):
        body = {"name": f"{tag}p{k}", "uuid": u}
        if parent and parent != "SHARING":
            body["parent_provider_uuid"] = parent
        _call(clients, "POST", "/resource_providers", "1.20", json=body)
        inv = {}
        for rc in (["DISK_GB"] if parent == "SHARING" else rng.sample(RCS, rng.randint(0, 3))):
            total = rng.randint(1, 8)
            inv[rc] = {"total": total, "reserved": rng.choice([0, 0, 1]) if total > 1 else 0,
                       "min_unit": rng.choice([1, 1, 2]), "max_unit": rng.choice([total, 2, 8]),
                       "step_size": rng.choice([1, 1, 2]),
                       "allocation_ratio": rng.choice([1.0, 1.0, 1.5, 2.0])}
        gen = 1
        if inv:
            r = _call(clients, "PUT", f"/resource_providers/{u}/inventories", "1.20",
                      json={"resource_provider_generation": 0, "inventories": inv})
            gen = r[0].json()["resource_provider_generation"]
        else:
            gen = 0
        traits = rng.sample(TRAITS, rng.randint(0, 2))
        if parent == "SHARING":
            traits = ["MISC_SHARES_VIA_AGGREGATE"]
        if traits:
            r = _call(clients, "PUT", f"/resource_providers/{u}/traits", "1.20",
                      json={"resource_provider_generation": gen, "traits": traits})
            gen = r[0].json()["resource_provider_generation"]
        my_aggs = rng.sample(aggs, rng.randint(0, 2)) if parent != "SHARING" else [aggs[0]]
        if my_aggs:
            _call(clients, "PUT", f"/resource_providers/{u}/aggregates", "1.20",
                  json={"resource_provider_generation": gen, "aggregates": my_aggs})
        for rc, i in inv.items():
            if rng.random() < 0.4:
                amount = i["step_size"] * max(1, i["min_unit"] // i["step_size"])
                _call(clients, "PUT", f"/allocations/{uuidlib.UUID(int=rng.getrandbits(128))}",
                      "1.28", json={"allocations": {u: {"resources": {rc: amount}}},
                                    "consumer_generation": None, "project_id": "p",
                                    "user_id": "u"})
    SHARING.update(u for u, parent in provs if parent == "SHARING")
    return {"provs": [u for u, _ in provs], "aggs": aggs}


def _query(rng: random.Random, sc: dict) -> tuple[str, dict]:
    v = rng.choice(VERSIONS)
    minor = int(v.split(".")[1])
    q: dict[str, str] = {}

    def res() -> str:
        return ",".join(f"{rc}:{rng.randint(1, 3)}" for rc in rng.sample(RCS, rng.randint(1, 2)))

    def req() -> str:
        if minor >= 39 and rng.random() < 0.3:
            return "in:" + ",".join(rng.sample(TRAITS, 2))
        names = rng.sample(TRAITS, rng.randint(1, 2))
        if minor >= 22 and rng.random() < 0.5:
            names[0] = "!" + names[0]
        return ",".join(names)

    q["resources"] = res()
    if minor >= 17 and rng.random() < 0.4:
        q["required"] = req()
    if minor >= 21 and rng.random() < 0.3:
        agg = rng.choice(sc["aggs"])
        q["member_of"] = ("!" + agg) if minor >= 32 and rng.random() < 0.3 else agg
        if rng.random() < 0.3:
            q["member_of"] = "in:" + ",".join(sc["aggs"])
    if minor >= 25 and rng.random() < 0.5:
        q["resources1"] = res()
        if rng.random() < 0.5:
            q["resources2"] = res()
            q["group_policy"] = rng.choice(["none", "isolate"])
        if rng.random() < 0.3 and minor >= 17:
            q["required1"] = req()
        if minor >= 36 and rng.random() < 0.3:
            q["same_subtree"] = "1," + ("2" if "resources2" in q else "1")
            if rng.random() < 0.5:  # a resourceless group pinned by same_subtree
                q["required3"] = rng.choice(TRAITS)
                q["same_subtree"] += ",3"
                q.setdefault("group_policy", "none")
        if minor >= 31 and rng.random() < 0.2:
            q["in_tree1"] = rng.choice(sc["provs"])
        if rng.random() < 0.2:
            del q["resources"]
    if minor >= 31 and rng.random() < 0.2:
        q["in_tree"] = rng.choice(sc["provs"])
    if minor >= 35 and rng.random() < 0.2:
        q["root_required"] = rng.choice(["HW_CPU_X86_AVX2", "!CUSTOM_A"])
    if minor >= 16 and rng.random() < 0.15:
        q["limit"] = str(rng.randint(1, 3))
    return v, q


def _mutation_bug(q: dict) -> bool:
    """Placement 16 adds amounts into shared objects when one resource class is
    requested by several groups and group_policy is not ``none``
    (research_context.copy_arr_if_needed), so its amounts grow across
    candidates (SRIOV_NET_VF 2+3 reported as 8). Only the status is compared then."""
    seen: set[str] = set()
    for k, val in q.items():
        if k.startswith("resources"):
            rcs = {x.split(":")[0] for x in val.split(",")}
            if rcs & seen and q.get("group_policy") != "none":
                return True
            seen |= rcs
    return False


def _anchor_dedup(request: tuple, sharing: set[str]) -> bool:
    """Placement 16 keeps the unsuffixed group's candidates in a set whose
    equality ignores the anchor (allocation_candidate.AllocationRequest.__eq__),
    so a sharing provider that alone satisfies that group survives for one
    arbitrary anchor tree only, dropping valid combinations with the others.
    ringstack keeps every anchor: its extra answers use a sharing provider."""
    return any(rp in sharing for rp, _, _ in request[0])


def _norm(body: dict) -> tuple:
    reqs = set()
    for ar in body["allocation_requests"]:
        a = ar["allocations"]
        items = a.items() if isinstance(a, dict) else \
            [(x["resource_provider"]["uuid"], x) for x in a]
        flat = frozenset((rp, rc, n) for rp, x in items for rc, n in x["resources"].items())
        maps = frozenset((s, frozenset(v)) for s, v in ar.get("mappings", {}).items())
        reqs.add((flat, maps))
    sums = {u: {**s, "traits": sorted(s.get("traits", []))} if "traits" in s else s
            for u, s in body["provider_summaries"].items()}
    return reqs, sums


@pytest.mark.parametrize("seed", range(int(os.environ.get("RINGSTACK_DIFF_SEEDS", "3"))))
def test_same_answers_as_placement(pair, seed):
    rng = random.Random(seed)
    sc = _scenario(pair, rng, f"s{seed}")
    for _ in range(40):
        v, q = _query(rng, sc)
        ours, theirs = _call(pair, "GET", "/allocation_candidates", v, params=q)
        if ours.status_code == 200 and "limit" in q and not _mutation_bug(q):  # sizes only
            assert len(ours.json()["allocation_requests"]) == \
                len(theirs.json()["allocation_requests"]), (v, q)
        elif ours.status_code == 200 and not _mutation_bug(q):
            a, b = _norm(ours.json()), _norm(theirs.json())
            extra = {r for r in a[0] - b[0] if not _anchor_dedup(r, SHARING)}
            assert not extra and b[0] <= a[0], (v, q, "only ours:", extra,
                                                 "only Placement:", b[0] - a[0])
            if a[0] == b[0]:
                assert a[1] == b[1], (v, q, ours.text, theirs.text)
        elif ours.status_code != 200:
            d = [r.json()["errors"][0]["detail"].split("\n\n", 1)[-1].strip() for r in (ours, theirs)]
            assert d[0] == d[1], (v, q)
