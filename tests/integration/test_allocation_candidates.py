"""GET /allocation_candidates against a real ``ringstack serve placement`` process,
plain HTTP, across the microversion boundaries where its behaviour changes."""

from __future__ import annotations

import uuid as uuidlib

import httpx
import pytest

from tests.support.procs import ringstack_argv, start_server

AGG = str(uuidlib.uuid4())
CN1, CN2, CN3, CHILD = (str(uuidlib.uuid4()) for _ in range(4))


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    srv = start_server(ringstack_argv("serve", "placement", "--data",
                                      str(tmp_path_factory.mktemp("pl")), "--port", "0",
                                      "--no-fsync"))
    client = httpx.Client(base_url=srv.url, timeout=30,
                          headers={"x-auth-token": "admin"})
    try:
        _populate(client)
        yield client
    finally:
        client.close()
        srv.kill()


def _v(version: str) -> dict[str, str]:
    return {"openstack-api-version": f"placement {version}"}


def _provider(c, uuid, name, inv, traits=(), aggs=(), parent=None):
    body = {"name": name, "uuid": uuid}
    if parent:
        body["parent_provider_uuid"] = parent
    r = c.post("/resource_providers", json=body, headers=_v("1.20"))
    assert r.status_code == 200, r.text
    r = c.put(f"/resource_providers/{uuid}/inventories", headers=_v("1.20"),
              json={"resource_provider_generation": 0, "inventories": inv})
    assert r.status_code == 200, r.text
    gen = r.json()["resource_provider_generation"]
    if traits:
        r = c.put(f"/resource_providers/{uuid}/traits", headers=_v("1.20"),
                  json={"resource_provider_generation": gen, "traits": list(traits)})
        assert r.status_code == 200, r.text
        gen = r.json()["resource_provider_generation"]
    if aggs:
        r = c.put(f"/resource_providers/{uuid}/aggregates", headers=_v("1.20"),
                  json={"resource_provider_generation": gen, "aggregates": list(aggs)})
        assert r.status_code == 200, r.text


def _populate(c):
    assert c.put("/traits/CUSTOM_GOLD", headers=_v("1.20")).status_code in (201, 204)
    _provider(c, CN1, "cn1", {"VCPU": {"total": 8}, "MEMORY_MB": {"total": 4096},
                              "DISK_GB": {"total": 100}}, ["HW_CPU_X86_AVX2"], [AGG])
    _provider(c, CN2, "cn2", {"VCPU": {"total": 4}, "MEMORY_MB": {"total": 2048}},
              ["CUSTOM_GOLD"])
    _provider(c, CN3, "cn3", {"VCPU": {"total": 2, "min_unit": 2}})  # VCPU:1 is below min_unit
    _provider(c, CHILD, "cn2_nic", {"SRIOV_NET_VF": {"total": 4}}, parent=CN2)


def get(c, version, **params):
    return c.get("/allocation_candidates", params=params, headers=_v(version))


def providers(body):
    out = []
    for ar in body["allocation_requests"]:
        a = ar["allocations"]
        out.append(sorted(a) if isinstance(a, dict) else sorted(x["resource_provider"]["uuid"]
                                                               for x in a))
    return sorted(out)


def detail(r):
    return r.json()["errors"][0]["detail"]


def test_route_appears_at_1_10_with_list_shape(api):
    assert get(api, "1.9", resources="VCPU:1").status_code == 404
    r = get(api, "1.10", resources="VCPU:1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert providers(body) == sorted([[CN1], [CN2]])
    assert isinstance(body["allocation_requests"][0]["allocations"], list)
    assert set(body["provider_summaries"][CN1]["resources"]) == {"VCPU"}  # requested only
    assert "traits" not in body["provider_summaries"][CN1]
    assert "last-modified" not in r.headers
    assert r.headers["openstack-api-version"] == "placement 1.10"


def test_dict_shape_cache_headers_and_limit(api):
    r = get(api, "1.12", resources="VCPU:1,MEMORY_MB:1024")
    assert r.json()["allocation_requests"][0]["allocations"][CN1] == \
        {"resources": {"VCPU": 1, "MEMORY_MB": 1024}}
    assert "cache-control" not in r.headers
    r = get(api, "1.15", resources="VCPU:1")
    assert r.headers["cache-control"] == "no-cache" and "last-modified" in r.headers
    assert get(api, "1.15", resources="VCPU:1", limit="1").status_code == 400
    r = get(api, "1.16", resources="VCPU:1", limit="1")
    assert len(r.json()["allocation_requests"]) == 1
    assert len(r.json()["provider_summaries"]) == 1
    assert get(api, "1.16", resources="VCPU:1", limit="0").status_code == 400


def test_required_traits_and_forbidden(api):
    assert get(api, "1.16", resources="VCPU:1", required="CUSTOM_GOLD").status_code == 400
    r = get(api, "1.17", resources="VCPU:1", required="CUSTOM_GOLD")
    assert providers(r.json()) == [[CN2]]
    assert r.json()["provider_summaries"][CN2]["traits"] == ["CUSTOM_GOLD"]
    r = get(api, "1.21", resources="VCPU:1", required="!CUSTOM_GOLD")
    assert r.status_code == 400
    r = get(api, "1.22", resources="VCPU:1", required="!CUSTOM_GOLD")
    assert providers(r.json()) == [[CN1]]
    r = get(api, "1.22", resources="VCPU:1", required="CUSTOM_NOPE")
    assert r.status_code == 400 and "No such trait(s): CUSTOM_NOPE" in detail(r)
    r = get(api, "1.38", resources="VCPU:1", required="in:CUSTOM_GOLD,HW_CPU_X86_AVX2")
    assert r.status_code == 400 and "1.39" in detail(r)
    r = get(api, "1.39", resources="VCPU:1", required="in:CUSTOM_GOLD,HW_CPU_X86_AVX2")
    assert providers(r.json()) == sorted([[CN1], [CN2]])


def test_member_of_and_forbidden_aggregates(api):
    assert get(api, "1.20", resources="VCPU:1", member_of=AGG).status_code == 400
    assert providers(get(api, "1.21", resources="VCPU:1", member_of=AGG).json()) == [[CN1]]
    assert get(api, "1.31", resources="VCPU:1", member_of="!" + AGG).status_code == 400
    r = get(api, "1.32", resources="VCPU:1", member_of="!" + AGG)
    assert providers(r.json()) == [[CN2]]
    r = get(api, "1.32", resources="VCPU:1", member_of="not-a-uuid")
    assert r.status_code == 400 and "valid UUID" in detail(r)


def test_granular_groups_and_group_policy(api):
    assert get(api, "1.24", resources1="VCPU:1").status_code == 400
    r = get(api, "1.25", resources1="VCPU:1", resources2="MEMORY_MB:10")
    assert r.status_code == 400 and "group_policy" in detail(r)
    r = get(api, "1.25", resources1="VCPU:1", resources2="MEMORY_MB:10", group_policy="isolate")
    assert r.json()["allocation_requests"] == []  # VCPU and memory live on one provider each
    r = get(api, "1.25", resources1="VCPU:1", resources2="MEMORY_MB:10", group_policy="none")
    assert providers(r.json()) == sorted([[CN1], [CN2]])
    r = get(api, "1.25", resources="VCPU:1", required1="CUSTOM_GOLD")
    assert r.status_code == 400 and "orphaned" in detail(r)
    assert get(api, "1.32", resources_X="VCPU:1").status_code == 400
    assert get(api, "1.33", resources_X="VCPU:1").status_code == 200


def test_nested_providers_and_summaries_per_version(api):
    r = get(api, "1.28", resources="VCPU:1,SRIOV_NET_VF:1")
    assert r.json()["allocation_requests"] == []  # two providers of one tree before 1.29
    r = get(api, "1.29", resources="VCPU:1,SRIOV_NET_VF:1")
    body = r.json()
    assert providers(body) == [sorted([CN2, CHILD])]
    assert body["provider_summaries"][CHILD]["parent_provider_uuid"] == CN2
    assert body["provider_summaries"][CHILD]["root_provider_uuid"] == CN2
    r = get(api, "1.26", resources="VCPU:1")
    assert set(r.json()["provider_summaries"][CN1]["resources"]) == {"VCPU"}
    r = get(api, "1.27", resources="VCPU:1")
    assert set(r.json()["provider_summaries"][CN1]["resources"]) == {"VCPU", "MEMORY_MB",
                                                                     "DISK_GB"}
    assert get(api, "1.30", resources="VCPU:1", in_tree=CN2).status_code == 400
    assert providers(get(api, "1.31", resources="SRIOV_NET_VF:1", in_tree=CHILD).json()) \
        == [[CHILD]]


def test_mappings_root_required_same_subtree(api):
    r = get(api, "1.33", resources="VCPU:1")
    assert "mappings" not in r.json()["allocation_requests"][0]
    r = get(api, "1.34", resources_C="VCPU:1", resources_N="SRIOV_NET_VF:1", group_policy="none")
    ar = r.json()["allocation_requests"]
    assert [a["mappings"] for a in ar] == [{"_C": [CN2], "_N": [CHILD]}]
    assert get(api, "1.34", resources="VCPU:1", root_required="CUSTOM_GOLD").status_code == 400
    r = get(api, "1.35", resources="VCPU:1", root_required="CUSTOM_GOLD")
    assert providers(r.json()) == [[CN2]]
    r = get(api, "1.35", resources="VCPU:1", root_required="!CUSTOM_GOLD")
    assert providers(r.json()) == [[CN1]]
    assert get(api, "1.35", resources_C="VCPU:1", same_subtree="_C").status_code == 400
    r = get(api, "1.36", resources_C="VCPU:1", resources_N="SRIOV_NET_VF:1", group_policy="none",
            same_subtree="_C,_N")
    assert providers(r.json()) == [sorted([CN2, CHILD])]
    r = get(api, "1.36", resources="VCPU:1", same_subtree="_X")
    assert r.status_code == 400


def test_bad_input_messages(api):
    r = get(api, "1.10")
    assert r.status_code == 400 and "'resources' is a required property" in detail(r)
    r = get(api, "1.10", resources="VCPU:0")
    assert r.status_code == 400 and "requires amount >= 1" in detail(r)
    r = get(api, "1.10", resources="VCPU")
    assert r.status_code == 400 and "Badly formed resources parameter" in detail(r)
    r = get(api, "1.10", resources="CUSTOM_NOPE:1")
    assert r.status_code == 400 and "No such resource class CUSTOM_NOPE" in detail(r)
    r = get(api, "1.10", resources="VCPU:1", bogus="1")
    assert r.status_code == 400 and "Invalid query string parameters" in detail(r)
    r = get(api, "1.36", required="CUSTOM_GOLD")
    assert r.status_code == 400


def test_claims_shrink_the_candidates(api):
    consumer = str(uuidlib.uuid4())
    r = api.put(f"/allocations/{consumer}", headers=_v("1.28"), json={
        "allocations": {CN2: {"resources": {"VCPU": 4}}}, "consumer_generation": None,
        "project_id": str(uuidlib.uuid4()), "user_id": str(uuidlib.uuid4())})
    assert r.status_code == 204, r.text
    try:
        body = get(api, "1.39", resources="VCPU:1").json()
        assert providers(body) == [[CN1]]
        body = get(api, "1.39", resources="SRIOV_NET_VF:1").json()
        assert body["provider_summaries"][CN2]["resources"]["VCPU"] == {"capacity": 4, "used": 4}
    finally:
        assert api.delete(f"/allocations/{consumer}").status_code == 204
    assert providers(get(api, "1.39", resources="VCPU:1").json()) == sorted([[CN1], [CN2]])
