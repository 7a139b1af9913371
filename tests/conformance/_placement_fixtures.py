"""Placement's gabbi fixtures, recreated through our HTTP API.

Placement's own fixtures (``placement/tests/functional/fixtures/gabbits.py``)
write straight into its database; here each one is rebuilt from reading
what it creates (providers, parents, aggregates, inventories, traits,
consumers, allocations) and which ``$ENVIRON[...]`` names it exports, using
only documented API calls as the admin. Generations come out as Placement's
do: an inventory, a trait set or an allocation bumps the provider once;
aggregates are set at microversion 1.1, which (like the fixture's
``set_aggregates``) leaves the generation alone.

``FIXTURES[name](client, env)`` fills ``env`` (a dict the harness exports
before running the file). Files whose fixture is not in ``FIXTURES`` cannot
be set up through the API (see README).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

MAX_INT = 2147483647


def _uuid() -> str:
    return str(uuid.uuid4())


class Builder:
    """Admin-side setup calls; every one must succeed (or the fixture is broken)."""

    def __init__(self, client: httpx.Client) -> None:
        self.c = client
        self.classes: set[str] = set()
        self.traits: set[str] = set()

    def _ok(self, resp: httpx.Response) -> httpx.Response:
        if resp.status_code >= 400:
            raise RuntimeError(f"fixture setup {resp.request.method} {resp.request.url}: "
                               f"{resp.status_code} {resp.text[:300]}")
        return resp

    def _gen(self, rp: str) -> int:
        return int(self._ok(self.c.get(f"/resource_providers/{rp}")).json()["generation"])

    def provider(self, name: str, *aggs: str, parent: str | None = None,
                 rp_uuid: str | None = None) -> str:
        rp = rp_uuid or _uuid()
        body: dict[str, object] = {"name": name, "uuid": rp}
        if parent:
            body["parent_provider_uuid"] = parent
        self._ok(self.c.post("/resource_providers", json=body,
                             headers={"openstack-api-version": "placement 1.14"}))
        if aggs:
            self._ok(self.c.put(f"/resource_providers/{rp}/aggregates", json=list(aggs),
                                headers={"openstack-api-version": "placement 1.1"}))
        return rp

    def resource_class(self, name: str) -> None:
        if name.startswith("CUSTOM_") and name not in self.classes:
            self._ok(self.c.put(f"/resource_classes/{name}",
                                headers={"openstack-api-version": "placement 1.7"}))
            self.classes.add(name)

    def inventory(self, rp: str, rc: str, total: int, **kw: float) -> None:
        self.resource_class(rc)
        body = {"resource_class": rc, "total": total, "max_unit": total, **kw,
                "resource_provider_generation": self._gen(rp)}
        self._ok(self.c.post(f"/resource_providers/{rp}/inventories", json=body))

    def set_traits(self, rp: str, *names: str) -> None:
        for name in names:
            if name.startswith("CUSTOM_") and name not in self.traits:
                self._ok(self.c.put(f"/traits/{name}",
                                    headers={"openstack-api-version": "placement 1.6"}))
                self.traits.add(name)
        self._ok(self.c.put(f"/resource_providers/{rp}/traits",
                            json={"traits": list(names), "resource_provider_generation": self._gen(rp)},
                            headers={"openstack-api-version": "placement 1.6"}))

    def allocate(self, rp: str, resources: dict[str, int], project: str, user: str,
                 consumer: str | None = None) -> str:
        consumer = consumer or _uuid()
        self._ok(self.c.put(f"/allocations/{consumer}", json={
            "allocations": {rp: {"resources": resources}}, "project_id": project,
            "user_id": user}, headers={"openstack-api-version": "placement 1.12"}))
        return consumer


def api_fixture(b: Builder, env: dict[str, str]) -> None:
    """APIFixture: no data, only the names every gabbit may use."""
    for key in ("RP_UUID", "RP_NAME", "RP_UUID1", "RP_NAME1", "RP_UUID2", "RP_NAME2",
                "PROJECT_ID", "ADMIN_PROJECT_ID", "SERVICE_PROJECT_ID", "USER_ID",
                "PROJECT_ID_ALT", "USER_ID_ALT", "INSTANCE_UUID", "MIGRATION_UUID",
                "CONSUMER_UUID", "PARENT_PROVIDER_UUID", "ALT_PARENT_PROVIDER_UUID"):
        env[key] = _uuid()
    env.update(CUSTOM_RES_CLASS="CUSTOM_IRON_NFV", CUSTOM_RES_CLASS1="CUSTOM_IRON_NFV1",
               CUSTOM_RES_CLASS2="CUSTOM_IRON_NFV2")


def allocation_fixture(b: Builder, env: dict[str, str]) -> None:
    """AllocationFixture: one provider (VCPU 10, DISK_GB 2048 step 10), three consumers."""
    api_fixture(b, env)
    env["ALT_USER_ID"] = _uuid()
    rp = b.provider(env["RP_NAME"], rp_uuid=env["RP_UUID"])
    b.inventory(rp, "DISK_GB", 2048, step_size=10, min_unit=10, max_unit=1000)
    b.inventory(rp, "VCPU", 10, max_unit=10)
    project, user = env["PROJECT_ID"], env["USER_ID"]
    env["CONSUMER_0"] = b.allocate(rp, {"DISK_GB": 1000}, project, user)
    env["CONSUMER_ID"] = b.allocate(rp, {"VCPU": 6}, project, user)
    env["ALT_CONSUMER_ID"] = b.allocate(rp, {"DISK_GB": 20, "VCPU": 1}, project,
                                        env["ALT_USER_ID"])
    env["ALT_RP_UUID"], env["ALT_RP_NAME"] = _uuid(), _uuid()


def shared_storage_fixture(b: Builder, env: dict[str, str]) -> None:
    """SharedStorageFixture: cn1, cn2, ss, ss2 in one aggregate; numa and pf children."""
    api_fixture(b, env)
    agg = env["AGG_UUID"] = _uuid()
    cn1, cn2 = b.provider("cn1", agg), b.provider("cn2", agg)
    ss, ss2 = b.provider("ss", agg), b.provider("ss2", agg)
    numa = {n: b.provider(f"numa{n}", parent=cn1 if n[0] == "1" else cn2)
            for n in ("1_1", "1_2", "2_1", "2_2")}
    pf = {n: b.provider(f"pf{n}", parent=numa[n]) for n in numa}
    env.update(CN1_UUID=cn1, CN2_UUID=cn2, SS_UUID=ss, SS2_UUID=ss2)
    for n in numa:
        env[f"NUMA{n}_UUID"], env[f"PF{n}_UUID"] = numa[n], pf[n]
    for cn in (cn1, cn2):
        b.inventory(cn, "VCPU", 24, allocation_ratio=16.0)
        b.inventory(cn, "MEMORY_MB", 128 * 1024, allocation_ratio=1.5)
    b.set_traits(cn1, "HW_CPU_X86_SSE", "HW_CPU_X86_SSE2")
    b.inventory(cn2, "DISK_GB", 2000, reserved=100, allocation_ratio=1.0)
    for shared in (ss, ss2):
        b.inventory(shared, "DISK_GB", 2000, reserved=100, allocation_ratio=1.0)
        b.set_traits(shared, "MISC_SHARES_VIA_AGGREGATE")
    for p in pf.values():
        b.inventory(p, "SRIOV_NET_VF", 8, allocation_ratio=1.0)


def numa_aggregate_fixture(b: Builder, env: dict[str, str]) -> None:
    """NUMAAggregateFixture: resourceless cn1/cn2, CPU in numa children, two sharing disks."""
    api_fixture(b, env)
    a, bb, c = env["AGGA_UUID"], env["AGGB_UUID"], env["AGGC_UUID"] = _uuid(), _uuid(), _uuid()
    cn1, cn2 = b.provider("cn1", a), b.provider("cn2", a, bb)
    ss1, ss2 = b.provider("ss1", a), b.provider("ss2", c)
    numas = [b.provider("numa1_1", c, parent=cn1), b.provider("numa1_2", parent=cn1),
             b.provider("numa2_1", parent=cn2), b.provider("numa2_2", parent=cn2)]
    env.update(CN1_UUID=cn1, CN2_UUID=cn2, SS1_UUID=ss1, SS2_UUID=ss2)
    for name, rp in zip(("1_1", "1_2", "2_1", "2_2"), numas, strict=True):
        env[f"NUMA{name}_UUID"] = rp
        b.inventory(rp, "VCPU", 24, allocation_ratio=16.0)
    for ss in (ss1, ss2):
        b.inventory(ss, "DISK_GB", 2000, reserved=100, allocation_ratio=1.0)
        b.set_traits(ss, "MISC_SHARES_VIA_AGGREGATE")


def _numa_network(b: Builder, env: dict[str, str], cn1: str | None, cn2: str | None) -> None:
    agg = env["AGGA_UUID"] = _uuid()
    ss1 = b.provider("ss1", agg)
    b.set_traits(ss1, "MISC_SHARES_VIA_AGGREGATE")
    b.inventory(ss1, "DISK_GB", 2000)
    env["SS1_UUID"] = ss1
    cn1 = cn1 or b.provider("cn1", agg)
    b._ok(b.c.put(f"/resource_providers/{cn1}/aggregates", json=[agg],
                  headers={"openstack-api-version": "placement 1.1"}))
    b.set_traits(cn1, "COMPUTE_VOLUME_MULTI_ATTACH")
    env["CN1_UUID"] = cn1
    numas = []
    for i in (0, 1):
        numa = b.provider(f"numa{i}", parent=cn1)
        b.set_traits(numa, "HW_NUMA_ROOT", *(["CUSTOM_FOO"] if i == 1 else []))
        b.inventory(numa, "VCPU", 4)
        numas.append(numa)
        env[f"NUMA{i}_UUID"] = numa
    b.inventory(numas[0], "MEMORY_MB", 2048, min_unit=512, step_size=256)
    b.inventory(numas[1], "MEMORY_MB", 2048, min_unit=256, max_unit=1024)
    user, project = "numafx-user", "numafx-project"
    b.allocate(numas[0], {"VCPU": 2}, project, user)
    env["FPGA0_UUID"] = fpga = b.provider("fpga0", parent=numas[0])
    b.inventory(fpga, "FPGA", 1)
    env["PGPU0_UUID"] = pgpu = b.provider("pgpu0", parent=numas[0])
    b.inventory(pgpu, "VGPU", 8)
    for i in (0, 1):
        env[f"FPGA1_{i}_UUID"] = fpga = b.provider(f"fpga1_{i}", parent=numas[1])
        b.inventory(fpga, "FPGA", 1)
    env["SRIOV_AGENT_UUID"] = agent = b.provider("sriov_agent", parent=cn1)
    b.set_traits(agent, "CUSTOM_VNIC_TYPE_DIRECT")
    for i in (1, 2):
        env[f"ESN{i}_UUID"] = dev = b.provider(f"esn{i}", parent=agent)
        b.set_traits(dev, f"CUSTOM_PHYSNET{i}")
        b.inventory(dev, "NET_BW_EGR_KILOBIT_PER_SEC", 10000 * i)
    env["OVS_AGENT_UUID"] = agent = b.provider("ovs_agent", parent=cn1)
    b.set_traits(agent, "CUSTOM_VNIC_TYPE_NORMAL")
    env["BR_INT_UUID"] = dev = b.provider("br_int", parent=agent)
    b.set_traits(dev, "CUSTOM_PHYSNET0")
    b.inventory(dev, "NET_BW_EGR_KILOBIT_PER_SEC", 1000)
    cn2 = cn2 or b.provider("cn2")
    b._ok(b.c.put(f"/resource_providers/{cn2}/aggregates", json=[agg],
                  headers={"openstack-api-version": "placement 1.1"}))
    b.inventory(cn2, "VCPU", 8)
    b.allocate(cn2, {"VCPU": 3}, project, user)
    b.inventory(cn2, "MEMORY_MB", 2048, min_unit=1024, step_size=128)
    b.inventory(cn2, "DISK_GB", 1000)
    b.set_traits(cn2, "CUSTOM_FOO")
    env["CN2_UUID"] = cn2
    nics = []
    for i in (1, 2, 3):
        env[f"NIC{i}_UUID"] = nic = b.provider(f"nic{i}", parent=cn2)
        b.set_traits(nic, "CUSTOM_HW_NIC_ROOT")
        nics.append(nic)
    pfs = [("1_1", 0, 1, 4), ("1_2", 0, 2, 4), ("2_1", 1, 1, 2), ("2_2", 1, 2, 2),
           ("2_3", 1, 1, 2), ("2_4", 1, 2, 2), ("3_1", 2, 1, 8)]
    for suf, nic_i, net, total in pfs:
        env[f"PF{suf}_UUID"] = pf = b.provider(f"pf{suf}", parent=nics[nic_i])
        b.set_traits(pf, f"CUSTOM_PHYSNET{net}")
        b.inventory(pf, "CUSTOM_VF", total)


def numa_network_fixture(b: Builder, env: dict[str, str]) -> None:
    """NUMANetworkFixture (see its ASCII tree in Placement)."""
    api_fixture(b, env)
    _numa_network(b, env, None, None)


def deep_numa_network_fixture(b: Builder, env: dict[str, str]) -> None:
    """DeepNUMANetworkFixture: NUMANetworkFixture under gp1 -> p1/p2 -> cn1/cn2."""
    api_fixture(b, env)
    gp1 = b.provider("gp1")
    p1, p2 = b.provider("p1", parent=gp1), b.provider("p2", parent=gp1)
    _numa_network(b, env, b.provider("cn1", parent=p1), b.provider("cn2", parent=p2))


def non_shared_storage_fixture(b: Builder, env: dict[str, str]) -> None:
    """NonSharedStorageFixture: three plain compute nodes."""
    api_fixture(b, env)
    for k in ("AGGA_UUID", "AGGB_UUID", "AGGC_UUID"):
        env[k] = _uuid()
    for i in (1, 2, 3):
        env[f"CN{i}_UUID"] = cn = b.provider(f"cn{i}")
        for rc, total in (("VCPU", 24), ("MEMORY_MB", 128 * 1024), ("DISK_GB", 2000)):
            b.inventory(cn, rc, total)


def granular_fixture(b: Builder, env: dict[str, str]) -> None:
    """GranularFixture: cn_left/middle/right and three sharing providers over aggA/B/C."""
    api_fixture(b, env)
    b.resource_class("CUSTOM_NET_MBPS")
    a, bb, c = env["AGGA"], env["AGGB"], env["AGGC"] = _uuid(), _uuid(), _uuid()
    env["CN_LEFT"] = rp = b.provider("cn_left", a)
    for rc, total in (("VCPU", 8), ("MEMORY_MB", 4096), ("DISK_GB", 500), ("VGPU", 8),
                      ("SRIOV_NET_VF", 8), ("CUSTOM_NET_MBPS", 4000)):
        b.inventory(rp, rc, total)
    b.set_traits(rp, "HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_GPU_API_DXVA",
                 "HW_NIC_DCB_PFC", "CUSTOM_FOO")
    env["CN_MIDDLE"] = rp = b.provider("cn_middle", a, bb)
    for rc, total in (("VCPU", 8), ("MEMORY_MB", 4096), ("SRIOV_NET_VF", 8),
                      ("CUSTOM_NET_MBPS", 4000)):
        b.inventory(rp, rc, total)
    b.set_traits(rp, "HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_CPU_X86_SSE", "HW_NIC_ACCEL_TLS")
    env["CN_RIGHT"] = rp = b.provider("cn_right", bb, c)
    for rc, total in (("VCPU", 8), ("MEMORY_MB", 4096), ("DISK_GB", 500)):
        b.inventory(rp, rc, total)
    b.inventory(rp, "VGPU", 8, max_unit=2)
    b.set_traits(rp, "HW_CPU_X86_MMX", "HW_GPU_API_DXVA", "CUSTOM_DISK_SSD")
    env["SHR_DISK_1"] = rp = b.provider("shr_disk_1", a)
    b.inventory(rp, "DISK_GB", 1000)
    b.set_traits(rp, "MISC_SHARES_VIA_AGGREGATE", "CUSTOM_DISK_SSD")
    env["SHR_DISK_2"] = rp = b.provider("shr_disk_2", a, bb)
    b.inventory(rp, "DISK_GB", 1000)
    b.set_traits(rp, "MISC_SHARES_VIA_AGGREGATE")
    env["SHR_NET"] = rp = b.provider("shr_net", c)
    b.inventory(rp, "SRIOV_NET_VF", 16)
    b.inventory(rp, "CUSTOM_NET_MBPS", 40000)
    b.set_traits(rp, "MISC_SHARES_VIA_AGGREGATE")


_VNIC_DIRECT = ("CUSTOM_VNIC_TYPE_DIRECT", "CUSTOM_VNIC_TYPE_DIRECT_PHYSICAL",
                "CUSTOM_VNIC_TYPE_MACVTAP")


def neutron_qos_multi_segment_fixture(b: Builder, env: dict[str, str]) -> None:
    """NeutronQoSMultiSegmentFixture: four compute trees (OVS and SR-IOV agents)."""
    api_fixture(b, env)
    nets = {0: ["OTHER"], 1: ["MSN_S1"], 2: ["MSN_S2"], 3: ["MSN_S1", "MSN_S2"]}
    for i, physnets in nets.items():
        bw = 1000 if i == 3 else None
        name = f"compute{i}"
        env[name] = cn = b.provider(name)
        for rc, total in (("VCPU", 8), ("MEMORY_MB", 4096), ("DISK_GB", 500)):
            b.inventory(cn, rc, total)
        env[f"{name}:ovs_agent"] = ovs = b.provider(f"{name}:Open vSwitch agent", parent=cn)
        b.inventory(ovs, "NET_PACKET_RATE_KILOPACKET_PER_SEC", 1000)
        b.set_traits(ovs, "CUSTOM_VNIC_TYPE_NORMAL")
        for j, net in enumerate(physnets):
            suffix = "" if j == 0 else str(j + 1)
            env[f"{name}:br_ex{suffix}"] = br = b.provider(
                f"{name}:Open vSwitch agent:br-ex{suffix}", parent=ovs)
            b.inventory(br, "NET_BW_EGR_KILOBIT_PER_SEC", bw or 5000)
            b.inventory(br, "NET_BW_IGR_KILOBIT_PER_SEC", bw or 5000)
            b.set_traits(br, "CUSTOM_VNIC_TYPE_NORMAL", f"CUSTOM_PHYSNET_{net}")
        sriov = b.provider(f"{name}:NIC Switch agent", parent=cn)
        # Placement's fixture exports compute2's agent under compute3's name (kept as is)
        env[f"{name}:sriov_agent"] = env["compute2:sriov_agent"] if i == 3 else sriov
        b.set_traits(sriov, *_VNIC_DIRECT)
        for j, net in enumerate(physnets):
            env[f"{name}:pf{j}"] = pf = b.provider(
                f"{name}:NIC Switch agent:enp129s0f{j}", parent=sriov)
            b.inventory(pf, "NET_BW_EGR_KILOBIT_PER_SEC", bw or 10000)
            b.inventory(pf, "NET_BW_IGR_KILOBIT_PER_SEC", bw or 10000)
            b.set_traits(pf, *_VNIC_DIRECT, f"CUSTOM_PHYSNET_{net}")


Setup = Callable[[Builder, dict[str, str]], None]
FIXTURES: dict[str, Setup] = {
    "APIFixture": api_fixture,
    "LegacyRBACPolicyFixture": api_fixture,
    "SecureRBACPolicyFixture": api_fixture,
    "OpenPolicyFixture": api_fixture,
    "AllocationFixture": allocation_fixture,
    "SharedStorageFixture": shared_storage_fixture,
    "NUMAAggregateFixture": numa_aggregate_fixture,
    "NUMANetworkFixture": numa_network_fixture,
    "DeepNUMANetworkFixture": deep_numa_network_fixture,
    "NonSharedStorageFixture": non_shared_storage_fixture,
    "GranularFixture": granular_fixture,
    "NeutronQoSMultiSegmentFixture": neutron_qos_multi_segment_fixture,
    "CORSFixture": api_fixture,
}
# policy mode each fixture runs the server in (Placement: enforce_new_defaults on
# only for SecureRBACPolicyFixture; OpenPolicyFixture sets every rule to "@")
POLICY = {"SecureRBACPolicyFixture": "secure-rbac", "OpenPolicyFixture": "open"}
# server options a fixture's configuration maps to (CORSFixture: [cors] allowed_origin
# and allow_headers)
SERVER_ARGS = {"CORSFixture": ["--cors-allowed-origin", "http://valid.example.com",
                               "--cors-allow-headers", "openstack-api-version"]}
