"""The Nova-like scheduler on a real ``ringstack serve placement`` process.

Hosts come from a real cluster builder file (``ring.builderfile``) and data
locality from the real object ring written from it. Scenarios: anti-affinity
spreads over hosts and zones, affinity packs, locality picks a replica
holder, evacuation and a missed heartbeat reschedule every instance exactly
once, and the usages in Placement agree with what the scheduler reports.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from common.config import DEFAULT_HASH_SECRET
from ring.builderfile import ClusterBuilder
from ring.inventory import Host
from ring.lookup import Ring
from ring.ringfile import write_ring
from tests.support.procs import ringstack_argv, start_server

HEADERS = {"x-auth-token": "admin", "openstack-api-version": "placement latest"}
ZONES, PER_ZONE = 3, 2
INTERVAL = 3.0  # heartbeats every 0.2 s keep the others up, even on a busy machine


def _cluster(tmp) -> tuple[str, str]:
    cb = ClusterBuilder.create(part_power=6, replicas=3, min_part_hours=0)
    for z in range(1, ZONES + 1):
        for k in range(PER_ZONE):
            name = f"z{z}h{k}"
            cb.inventory.add_host(Host(name, 1, z, "127.0.0.1", 6200 + 10 * z + k, vcpus=4,
                                       memory_mb=8192, disk_gb=100), now=0)
            cb.inventory.add_drive(name, "sdb", 100.0, now=0)
    cb.rebalance("object", now=1.0)
    builder, ring = str(tmp / "cluster.builder"), str(tmp / "object.ring")
    cb.save(builder)
    write_ring(ring, cb.ring_data("object"))
    return builder, ring


def _serve(tmp_path, interval: float):
    builder, ring = _cluster(tmp_path)
    srv = start_server(ringstack_argv("serve", "placement", "--data", str(tmp_path / "pl"),
                                      "--port", "0", "--no-fsync"),
                       env={"RINGSTACK_HEARTBEAT_INTERVAL": str(interval)})
    c = httpx.Client(base_url=srv.url, headers=HEADERS, timeout=30)
    try:
        r = c.post("/scheduler/hosts", json={"builder": builder, "ring": ring,
                                             "hash_secret": DEFAULT_HASH_SECRET})
        assert r.status_code == 200, r.text
        assert len(r.json()["added"]) == ZONES * PER_ZONE
        c.ring = ring  # type: ignore[attr-defined]
        c.builder = builder  # type: ignore[attr-defined]
        yield c
    finally:
        c.close()
        srv.kill()


@pytest.fixture
def sched(tmp_path):
    yield from _serve(tmp_path, 3600.0)  # no host goes down during these tests


@pytest.fixture
def sched_fast(tmp_path):
    yield from _serve(tmp_path, INTERVAL)


def create(c, **body):
    body.setdefault("resources", {"VCPU": 1, "MEMORY_MB": 1024, "DISK_GB": 10})
    r = c.post("/scheduler/instances", json=body)
    assert r.status_code == 201, r.text
    return r.json()["instances"]


def usages(c) -> dict[str, dict[str, int]]:
    out = {}
    for h in c.get("/scheduler/hosts").json()["hosts"]:
        r = c.get(f"/resource_providers/{h['provider']}/usages")
        out[h["name"]] = r.json()["usages"]
    return out


def check_consistent(c) -> None:
    """Placement usages == the sum of the scheduler's instances, per host."""
    want: dict[str, int] = {}
    for i in c.get("/scheduler/instances").json()["instances"]:
        want[i["host"]] = want.get(i["host"], 0) + i["resources"]["VCPU"]
        alloc = c.get(f"/allocations/{i['uuid']}").json()["allocations"]
        assert list(alloc) == [i["provider"]]  # exactly one home
    for host, used in usages(c).items():
        assert used.get("VCPU", 0) == want.get(host, 0), host


def test_anti_affinity_spreads_over_hosts_and_zones(sched):
    insts = create(sched, name="web", count=3,
                   server_group={"name": "web", "policy": "anti-affinity"})
    hosts = [i["host"] for i in insts]
    assert len(set(hosts)) == 3 and len({h[:2] for h in hosts}) == 3
    more = create(sched, name="web-b", count=3,
                  server_group={"name": "web", "policy": "anti-affinity"})
    assert len({i["host"] for i in insts + more}) == 6
    r = sched.post("/scheduler/instances", json={
        "name": "one-too-many", "resources": {"VCPU": 1},
        "server_group": {"name": "web", "policy": "anti-affinity"}})
    assert r.status_code == 409 and "No valid host" in r.json()["errors"][0]["detail"]
    check_consistent(sched)


def test_affinity_packs_and_capacity_is_never_exceeded(sched):
    insts = create(sched, name="db", count=4, server_group={"name": "db", "policy": "affinity"})
    assert len({i["host"] for i in insts}) == 1
    # a host has 4 VCPU x 4.0 = 16: fill it through the group until it refuses
    more = create(sched, name="db2", count=12, resources={"VCPU": 1},
                  server_group={"name": "db", "policy": "affinity"})
    assert {i["host"] for i in more} == {insts[0]["host"]}
    r = sched.post("/scheduler/instances", json={"name": "x", "resources": {"VCPU": 1},
                                                  "server_group": {"name": "db",
                                                                   "policy": "affinity"}})
    assert r.status_code == 409
    assert usages(sched)[insts[0]["host"]]["VCPU"] == 16
    check_consistent(sched)


def test_locality_picks_a_replica_holder(sched):
    ring = Ring(sched.ring, DEFAULT_HASH_SECRET)
    for k in range(4):
        path = f"AUTH_test/data/object-{k}"
        holders = {d.host for d in ring.get_nodes("AUTH_test", "data", f"object-{k}")[1]}
        inst = create(sched, name=f"job{k}", locality=[path])[0]
        assert inst["host"] in holders, (inst["host"], holders)


def test_evacuation_moves_every_instance_exactly_once(sched):
    create(sched, name="spread", count=6, resources={"VCPU": 2})
    before = {i["uuid"]: i["host"] for i in sched.get("/scheduler/instances").json()["instances"]}
    victim = max(set(before.values()), key=lambda h: list(before.values()).count(h))
    on_victim = {u for u, h in before.items() if h == victim}
    r = sched.post(f"/scheduler/hosts/{victim}/evacuate")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["failed"] == []
    assert sorted(m["instance"] for m in report["moved"]) == sorted(on_victim)
    assert all(m["from"] == victim and m["to"] != victim for m in report["moved"])
    after = {i["uuid"]: i["host"] for i in sched.get("/scheduler/instances").json()["instances"]}
    assert victim not in after.values() and set(after) == set(before)
    assert usages(sched)[victim].get("VCPU", 0) == 0
    check_consistent(sched)
    # a disabled host takes no new instances
    hosts = {create(sched, name=f"n{k}", resources={"VCPU": 1})[0]["host"] for k in range(6)}
    assert victim not in hosts


def test_missed_heartbeat_reschedules_every_instance_exactly_once(sched_fast):
    c = sched_fast
    group = create(c, name="svc", count=3, resources={"VCPU": 1},
                   server_group={"name": "svc", "policy": "anti-affinity"})
    create(c, name="plain", count=6, resources={"VCPU": 2})
    victim = group[0]["host"]
    before = {i["uuid"]: i["host"] for i in c.get("/scheduler/instances").json()["instances"]}
    on_victim = sorted(u for u, h in before.items() if h == victim)
    alive = [h["name"] for h in c.get("/scheduler/hosts").json()["hosts"] if h["name"] != victim]
    assert c.post(f"/scheduler/hosts/{victim}/heartbeat").status_code == 200  # now watched
    stop = threading.Event()

    def beat() -> None:
        with httpx.Client(base_url=str(c.base_url), headers=HEADERS, timeout=10) as hb:
            while not stop.is_set():
                for h in alive:
                    hb.post(f"/scheduler/hosts/{h}/heartbeat")
                stop.wait(0.2)

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 20
        events: list = []
        while time.monotonic() < deadline and not events:
            events = [e for e in c.get("/scheduler/events").json()["events"]
                      if e["event"] == "host_down"]
            time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    assert [e["down"] for e in events] == [[victim]]
    ev = events[0]
    assert ev["failed"] == []
    assert sorted(m["instance"] for m in ev["moved"]) == on_victim  # each exactly once
    after = {i["uuid"]: i["host"] for i in c.get("/scheduler/instances").json()["instances"]}
    assert victim not in after.values() and set(after) == set(before)
    svc_hosts = [after[i["uuid"]] for i in group]
    assert len(set(svc_hosts)) == 3  # the group is still anti-affine
    states = {h["name"]: h["state"] for h in c.get("/scheduler/hosts").json()["hosts"]}
    assert states[victim] == "down" and all(states[h] == "up" for h in alive)
    check_consistent(c)
    # it comes back: up again, its instances stay where they went
    assert c.post(f"/scheduler/hosts/{victim}/heartbeat").json()["was_down"] is True
    assert {i["uuid"]: i["host"] for i in c.get("/scheduler/instances").json()["instances"]} \
        == after


def test_inventory_changes_follow_the_builder_file(sched):
    insts = create(sched, name="pinned", count=1, resources={"VCPU": 1})
    cb = ClusterBuilder.load(sched.builder)
    cb.inventory.add_host(Host("z9h0", 1, 9, "127.0.0.1", 6299, vcpus=64, memory_mb=65536,
                               disk_gb=500), now=2)
    cb.save(sched.builder)
    hosts = {h["name"]: h for h in sched.get("/scheduler/hosts").json()["hosts"]}
    assert hosts["z9h0"]["vcpus"] == 64 and hosts["z9h0"]["state"] == "up"
    r = sched.get("/allocation_candidates", params={"resources": "VCPU:100",
                                                    "required": "CUSTOM_ZONE_Z9"})
    assert len(r.json()["allocation_requests"]) == 1
    inst = create(sched, name="big", resources={"VCPU": 100}, availability_zone="r1z9")[0]
    assert inst["host"] == "z9h0"
    # a host that leaves the inventory with instances on it: they move off first
    cb = ClusterBuilder.load(sched.builder)
    victim = insts[0]["host"]
    for d in list(cb.inventory.drives_of(victim)):
        cb.inventory.remove_drive(d.id, now=3)
    cb.inventory.remove_host(victim, now=3)
    cb.save(sched.builder)
    names = {h["name"]: h["state"] for h in sched.get("/scheduler/hosts").json()["hosts"]}
    assert names[victim] == "disabled"
    moved = sched.get(f"/scheduler/instances/{insts[0]['uuid']}").json()
    assert moved["host"] != victim
    check_consistent(sched)
