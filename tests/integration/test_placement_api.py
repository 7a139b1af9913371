"""The Placement API over plain HTTP against a real ``ringstack serve
placement`` process: every route we serve and the microversion boundaries
where request or response shapes change."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.procs import ServerProcess, ringstack_argv, start_server


def _start(tmp_path_factory: pytest.TempPathFactory, policy: str) -> ServerProcess:
    data = tmp_path_factory.mktemp(f"placement-{policy}")
    return start_server(ringstack_argv("serve", "placement", "--data", str(data), "--port", "0",
                                       "--policy", policy, "--no-fsync"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = _start(tmp_path_factory, "legacy")
    yield proc
    proc.stop()


class Api:
    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=10)

    def __call__(self, method: str, path: str, version: str | None = "latest", json=None,
                 token: str | None = "admin", headers: dict[str, str] | None = None,
                 content: bytes | None = None) -> httpx.Response:
        h = {"accept": "application/json"}
        if version:
            h["openstack-api-version"] = f"placement {version}"
        if token:
            h["x-auth-token"] = token
        h.update(headers or {})
        return self.client.request(method, path, json=json, headers=h, content=content)


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Api:
    return Api(server.url)


def new_rp(api: Api, name: str | None = None, parent: str | None = None, **invs: int) -> str:
    u = str(uuid.uuid4())
    body = {"name": name or f"rp-{u}", "uuid": u}
    if parent:
        body["parent_provider_uuid"] = parent
    assert api("POST", "/resource_providers", json=body).status_code == 200
    if invs:
        r = api("PUT", f"/resource_providers/{u}/inventories", json={
            "resource_provider_generation": 0,
            "inventories": {rc: {"total": n} for rc, n in invs.items()}})
        assert r.status_code == 200, r.text
    return u


def err(r: httpx.Response) -> dict:
    return r.json()["errors"][0]


def test_root_and_microversions(api: Api) -> None:
    r = api("GET", "/", version=None, token=None)
    assert r.status_code == 200
    assert r.headers["openstack-api-version"] == "placement 1.0"
    assert "openstack-api-version" in r.headers["vary"]
    v = r.json()["versions"][0]
    assert (v["id"], v["min_version"], v["max_version"], v["status"]) == \
        ("v1.0", "1.0", "1.39", "CURRENT")
    assert api("GET", "/", version="latest").headers["openstack-api-version"] == "placement 1.39"
    r = api("GET", "/", version="0.5")
    assert r.status_code == 406 and "Unacceptable version header: 0.5" in r.text
    assert err(r)["max_version"] == "1.39"
    r = api("GET", "/", version="1.40")
    assert r.status_code == 406
    r = api("GET", "/", version="pony.horse")
    assert r.status_code == 400 and "invalid version string: pony.horse" in r.text
    r = api("POST", "/", version=None, content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.headers["openstack-api-version"] == "placement 1.0"


def test_healthcheck_and_metrics(api: Api) -> None:
    r = api("GET", "/healthcheck", version=None, token=None)
    assert r.status_code == 200 and r.text == "OK"
    api("GET", "/", version=None, token=None)
    r = api("GET", "/metrics", version=None, token=None)
    assert 'placement_requests_total{method="GET",status="200"}' in r.text


def test_auth_and_errors(api: Api) -> None:
    assert api("GET", "/resource_providers", token=None).status_code == 401
    r = api("GET", "/resource_providers", token="user")
    assert r.status_code == 403 and err(r)["title"] == "Forbidden"
    r = api("GET", "/moo")
    assert r.status_code == 404
    r = api("GET", "/moo", headers={"accept": "text/plain"})
    assert r.status_code == 404 and "could not be found" in r.text
    r = api("GET", "/allocations")
    assert r.status_code == 405 and err(r)["title"] == "Method Not Allowed"
    r = api("GET", "/resource_providers/" + str(uuid.uuid4()), version="1.23")
    assert err(r)["code"] == "placement.undefined_code"
    assert "code" not in err(api("GET", "/resource_providers/x", version="1.22"))


def test_provider_create_show_update_delete(api: Api) -> None:
    u = str(uuid.uuid4())
    r = api("POST", "/resource_providers", version="1.19", json={"name": f"old-{u}", "uuid": u})
    assert r.status_code == 201 and r.headers["location"].endswith(u) and not r.content
    assert api("DELETE", f"/resource_providers/{u}").status_code == 204
    r = api("POST", "/resource_providers", version="1.20", json={"name": f"new-{u}", "uuid": u})
    assert r.status_code == 200 and r.json()["generation"] == 0
    assert r.json()["parent_provider_uuid"] is None and r.json()["root_provider_uuid"] == u
    r = api("POST", "/resource_providers", json={"name": f"new-{u}", "uuid": str(uuid.uuid4())})
    assert r.status_code == 409 and err(r)["code"] == "placement.duplicate_name"
    r = api("POST", "/resource_providers", json={"name": "x", "uuid": u.replace("-", "")})
    assert r.status_code == 409 and f"uuid: {u} already exists" in r.text
    assert len(api("GET", f"/resource_providers/{u}", version="1.13").json()) == 4
    assert len(api("GET", f"/resource_providers/{u}").json()) == 6
    links = api("GET", f"/resource_providers?uuid={u}", version="1.10").json()
    assert len(links["resource_providers"][0]["links"]) == 5
    links = api("GET", f"/resource_providers?uuid={u}", version="1.11").json()
    assert len(links["resource_providers"][0]["links"]) == 6
    r = api("GET", f"/resource_providers/{u}", version="1.15")
    assert r.headers["cache-control"] == "no-cache" and r.headers["last-modified"].endswith("GMT")
    r = api("GET", f"/resource_providers/{u}", version="1.14")
    assert "cache-control" not in r.headers and "last-modified" not in r.headers
    r = api("PUT", f"/resource_providers/{u}", json={"name": f"renamed-{u}"})
    assert r.status_code == 200 and r.json()["name"] == f"renamed-{u}"
    r = api("PUT", f"/resource_providers/{u}", json={"badfield": 1})
    assert r.status_code == 400 and "JSON does not validate" in r.text
    r = api("POST", "/resource_providers", json={"name": "n" * 201})
    assert "Failed validating 'maxLength'" in r.text
    r = api("POST", "/resource_providers", json={"name": "b", "uuid": "not a uuid"})
    assert "Failed validating 'format'" in r.text
    r = api("POST", "/resource_providers", content=b'{"foo": }',
            headers={"content-type": "application/json"})
    assert r.status_code == 400 and "Malformed JSON" in r.text
    r = api("POST", "/resource_providers", content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert api("GET", "/resource_providers?uuid=spameggs").status_code == 400
    r = api("GET", "/resource_providers?spam=eggs")
    assert "Invalid query string parameters" in r.text
    assert api("DELETE", f"/resource_providers/{u}").status_code == 204
    r = api("DELETE", f"/resource_providers/{u}")
    assert r.status_code == 404 and "found for delete" in r.text


def test_nested_providers_and_reparenting(api: Api) -> None:
    root = new_rp(api)
    other = new_rp(api)
    r = api("POST", "/resource_providers", version="1.13", json={"name": "c", "parent_provider_uuid": root})
    assert r.status_code == 400 and "JSON does not validate" in r.text
    child = new_rp(api, parent=root)
    got = api("GET", f"/resource_providers/{child}").json()
    assert got["parent_provider_uuid"] == root and got["root_provider_uuid"] == root
    tree = api("GET", f"/resource_providers?in_tree={child}").json()["resource_providers"]
    assert {p["uuid"] for p in tree} == {root, child}
    name = got["name"]
    r = api("PUT", f"/resource_providers/{child}", version="1.36",
            json={"name": name, "parent_provider_uuid": other})
    assert r.status_code == 400 and "re-parenting a provider is not currently allowed" in r.text
    r = api("PUT", f"/resource_providers/{child}", version="1.36",
            json={"name": name, "parent_provider_uuid": None})
    assert "un-parenting a provider is not currently allowed" in r.text
    r = api("PUT", f"/resource_providers/{child}", version="1.37",
            json={"name": name, "parent_provider_uuid": other})
    assert r.status_code == 200 and r.json()["root_provider_uuid"] == other
    r = api("PUT", f"/resource_providers/{other}",
            json={"name": "loop-" + other, "parent_provider_uuid": child})
    assert "creating loop in the provider tree is not allowed" in r.text
    r = api("DELETE", f"/resource_providers/{other}")
    assert r.status_code == 409
    assert err(r)["code"] == "placement.resource_provider.cannot_delete_parent"


def test_inventories(api: Api) -> None:
    u = new_rp(api)
    base = f"/resource_providers/{u}/inventories"
    r = api("POST", base, json={"resource_class": "DISK_GB", "total": 100, "max_unit": 50})
    assert r.status_code == 201 and r.headers["location"].endswith("/inventories/DISK_GB")
    assert r.json()["resource_provider_generation"] == 1 and r.json()["min_unit"] == 1
    r = api("POST", base, json={"resource_class": "DISK_GB", "total": 100})
    assert r.status_code == 409
    r = api("GET", f"{base}/DISK_GB")
    assert r.json()["max_unit"] == 50 and r.json()["allocation_ratio"] == 1.0
    r = api("PUT", f"{base}/DISK_GB", json={"resource_provider_generation": 0, "total": 5})
    assert r.status_code == 409 and err(r)["code"] == "placement.concurrent_update"
    r = api("PUT", f"{base}/DISK_GB", version="1.25",
            json={"resource_provider_generation": 1, "total": 5, "reserved": 5})
    assert r.status_code == 400 and "greater than or equal to total" in r.text
    r = api("PUT", f"{base}/DISK_GB", version="1.26",
            json={"resource_provider_generation": 1, "total": 5, "reserved": 5})
    assert r.status_code == 200 and r.json()["resource_provider_generation"] == 2
    r = api("PUT", base, json={"resource_provider_generation": 2, "inventories": {
        "VCPU": {"total": 8, "allocation_ratio": 2.0}, "MEMORY_MB": {"total": 1024}}})
    assert r.status_code == 200 and set(r.json()["inventories"]) == {"VCPU", "MEMORY_MB"}
    r = api("PUT", base, json={"resource_provider_generation": 3,
                               "inventories": {"NOPE": {"total": 1}}})
    assert r.status_code == 400 and "Unknown resource class" in r.text
    r = api("PUT", base, json={"resource_provider_generation": 3,
                               "inventories": {"VCPU": {"total": 0}}})
    assert "Failed validating 'minimum'" in r.text
    assert api("GET", f"{base}/DISK_GB").status_code == 404
    assert api("DELETE", base, version="1.4").status_code == 405
    c = str(uuid.uuid4())
    assert api("PUT", f"/allocations/{c}", version="1.12", json={
        "allocations": {u: {"resources": {"VCPU": 16}}},
        "project_id": "p", "user_id": "u"}).status_code == 204
    r = api("DELETE", f"{base}/VCPU", version="1.23")  # Placement's code for this one
    assert r.status_code == 409 and err(r)["code"] == "placement.concurrent_update"
    r = api("DELETE", base, version="1.23")
    assert r.status_code == 409 and err(r)["code"] == "placement.inventory.inuse"
    assert api("DELETE", f"{base}/MEMORY_MB").status_code == 204
    r = api("GET", f"/resource_providers/{u}/usages")
    assert r.json()["usages"] == {"VCPU": 16}
    r = api("DELETE", f"/resource_providers/{u}", version="1.23")
    assert r.status_code == 409 and err(r)["code"] == "placement.resource_provider.inuse"
    assert api("DELETE", f"/allocations/{c}").status_code == 204
    assert api("DELETE", base, version="1.5").status_code == 204
    assert api("GET", base).json()["inventories"] == {}


def test_resource_classes(api: Api) -> None:
    assert api("GET", "/resource_classes", version="1.1").status_code == 404
    names = [c["name"] for c in api("GET", "/resource_classes").json()["resource_classes"]]
    assert names[0] == "VCPU" and "DISK_GB" in names
    assert api("POST", "/resource_classes", json={"name": "CUSTOM_A1"}).status_code == 201
    r = api("POST", "/resource_classes", json={"name": "CUSTOM_A1"})
    assert r.status_code == 409 and "Conflicting resource class already exists" in r.text
    assert api("POST", "/resource_classes", json={"name": "IRON"}).status_code == 400
    r = api("GET", "/resource_classes/CUSTOM_A1")
    assert r.json()["links"][0]["href"] == "/resource_classes/CUSTOM_A1"
    r = api("PUT", "/resource_classes/CUSTOM_A1", version="1.6", json={"name": "CUSTOM_A2"})
    assert r.status_code == 200 and r.json()["name"] == "CUSTOM_A2"
    r = api("PUT", "/resource_classes/VCPU", version="1.6", json={"name": "CUSTOM_X"})
    assert "Cannot update standard resource class VCPU" in r.text
    assert api("PUT", "/resource_classes/CUSTOM_B", version="1.7").status_code == 201
    assert api("PUT", "/resource_classes/CUSTOM_B", version="1.7").status_code == 204
    r = api("DELETE", "/resource_classes/VCPU")
    assert r.status_code == 400 and "Cannot delete standard resource class" in r.text
    assert api("DELETE", "/resource_classes/CUSTOM_A2").status_code == 204
    assert api("DELETE", "/resource_classes/CUSTOM_A2").status_code == 404


def test_traits(api: Api) -> None:
    assert api("GET", "/traits", version="1.5").status_code == 404
    r = api("PUT", "/traits/CUSTOM_T1", version="1.6")
    assert r.status_code == 201 and r.headers["location"].endswith("/traits/CUSTOM_T1")
    assert "cache-control" not in r.headers
    r = api("PUT", "/traits/CUSTOM_T1", version="1.15")
    assert r.status_code == 204 and r.headers["cache-control"] == "no-cache"
    assert api("PUT", "/traits/TRAIT_X").status_code == 400
    assert api("GET", "/traits/CUSTOM_T1").status_code == 204
    assert api("GET", "/traits/CUSTOM_NOPE").status_code == 404
    r = api("GET", "/traits?name=in:CUSTOM_T1,HW_CPU_X86_SSE")
    assert sorted(r.json()["traits"]) == ["CUSTOM_T1", "HW_CPU_X86_SSE"]
    assert "CUSTOM_T1" in api("GET", "/traits?name=startswith:CUSTOM_").json()["traits"]
    assert api("GET", "/traits?name=in_abc").status_code == 400
    assert api("GET", "/traits?associated=xyz").status_code == 400
    u = new_rp(api)
    path = f"/resource_providers/{u}/traits"
    assert api("GET", path).json() == {"traits": [], "resource_provider_generation": 0}
    r = api("PUT", path, json={"traits": ["CUSTOM_T1", "HW_CPU_X86_SSE"],
                               "resource_provider_generation": 0})
    assert r.status_code == 200 and r.json()["resource_provider_generation"] == 1
    r = api("PUT", path, json={"traits": ["CUSTOM_T1"], "resource_provider_generation": 0})
    assert r.status_code == 409 and err(r)["code"] == "placement.concurrent_update"
    r = api("PUT", path, json={"traits": ["CUSTOM_NOPE"], "resource_provider_generation": 1})
    assert r.status_code == 400 and "No such trait" in r.text
    r = api("PUT", path, json={"traits": ["CUSTOM_T1"]})
    assert "'resource_provider_generation' is a required property" in r.text
    assert "CUSTOM_T1" in api("GET", "/traits?associated=true").json()["traits"]
    r = api("DELETE", "/traits/CUSTOM_T1")
    assert r.status_code == 409 and "in use" in r.text
    assert api("DELETE", "/traits/HW_CPU_X86_SSE").status_code == 400
    assert api("DELETE", path).status_code == 204
    assert api("DELETE", "/traits/CUSTOM_T1").status_code == 204


def test_provider_filters(api: Api) -> None:
    agg1, agg2 = str(uuid.uuid4()), str(uuid.uuid4())
    api("PUT", "/traits/CUSTOM_FILTER")
    a = new_rp(api, VCPU=4)
    b = new_rp(api, VCPU=1)
    r = api("PUT", f"/resource_providers/{a}/aggregates", version="1.1", json=[agg1])
    assert r.status_code == 200 and r.json() == {"aggregates": [agg1]}
    r = api("PUT", f"/resource_providers/{b}/aggregates",
            json={"aggregates": [agg1, agg2], "resource_provider_generation": 1})
    assert r.status_code == 200 and r.json()["resource_provider_generation"] == 2
    r = api("PUT", f"/resource_providers/{b}/aggregates",
            json={"aggregates": [agg1], "resource_provider_generation": 1})
    assert r.status_code == 409 and err(r)["code"] == "placement.concurrent_update"
    api("PUT", f"/resource_providers/{a}/traits",
        json={"traits": ["CUSTOM_FILTER"], "resource_provider_generation": 1})

    def uuids(query: str, version: str = "latest") -> set[str]:
        r = api("GET", "/resource_providers?" + query, version=version)
        assert r.status_code == 200, r.text
        return {p["uuid"] for p in r.json()["resource_providers"]} & {a, b}

    assert uuids(f"member_of=in:{agg1},{agg2}") == {a, b}
    assert uuids(f"member_of={agg2}") == {b}
    assert uuids(f"member_of={agg1}&member_of={agg2}") == {b}
    assert uuids(f"member_of=!{agg2}") == {a}
    r = api("GET", f"/resource_providers?member_of={agg1}&member_of={agg2}", version="1.23")
    assert "Multiple member_of parameters are not supported" in r.text
    r = api("GET", f"/resource_providers?member_of=!{agg2}", version="1.31")
    assert "Forbidden member_of parameters are not supported" in r.text
    assert uuids("resources=VCPU:2") == {a}
    assert "Invalid query string" in api("GET", "/resource_providers?resources=VCPU:2",
                                          version="1.3").text
    assert uuids("required=CUSTOM_FILTER") == {a}
    assert uuids("required=!CUSTOM_FILTER") == {b}
    r = api("GET", "/resource_providers?required=!CUSTOM_FILTER", version="1.21")
    assert r.status_code == 400
    assert uuids("required=in:CUSTOM_FILTER,HW_CPU_X86_SSE") == {a}
    assert api("GET", "/resource_providers?required=in:CUSTOM_FILTER",
               version="1.38").status_code == 400
    r = api("GET", "/resource_providers?required=CUSTOM_BOGUS")
    assert "No such trait(s): CUSTOM_BOGUS" in r.text


def test_allocations_by_microversion(api: Api) -> None:
    u = new_rp(api, VCPU=8, DISK_GB=100)
    c = str(uuid.uuid4())
    r = api("PUT", f"/allocations/{c}", version="1.0", json={"allocations": [
        {"resource_provider": {"uuid": u}, "resources": {"DISK_GB": 10}}]})
    assert r.status_code == 204 and "cache-control" not in r.headers
    got = api("GET", f"/allocations/{c}", version="1.11").json()
    assert got == {"allocations": {u: {"generation": 2, "resources": {"DISK_GB": 10}}}}
    got = api("GET", f"/allocations/{c}", version="1.12").json()
    assert got["project_id"] == "00000000-0000-0000-0000-000000000000"
    r = api("PUT", f"/allocations/{c}", version="1.8", json={"allocations": [
        {"resource_provider": {"uuid": u}, "resources": {"DISK_GB": 10}}]})
    assert r.status_code == 400 and "'project_id' is a required property" in r.text
    r = api("PUT", f"/allocations/{c}", version="1.12", json={
        "allocations": {u: {"resources": {"DISK_GB": 0}}}, "project_id": "p", "user_id": "u"})
    assert "0 is less than the minimum of 1" in r.text
    r = api("PUT", f"/allocations/{c}", version="1.28", json={
        "allocations": {u: {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u"})
    assert r.status_code == 400 and "'consumer_generation' is a required property" in r.text
    r = api("PUT", f"/allocations/{c}", version="1.28", json={
        "allocations": {u: {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u",
        "consumer_generation": None})
    assert r.status_code == 409 and "consumer generation conflict" in r.text
    assert err(r)["code"] == "placement.concurrent_update"
    gen = api("GET", f"/allocations/{c}", version="1.28").json()["consumer_generation"]
    r = api("PUT", f"/allocations/{c}", version="1.28", json={
        "allocations": {u: {"resources": {"VCPU": 2}}}, "project_id": "p", "user_id": "u",
        "consumer_generation": gen})
    assert r.status_code == 204
    r = api("PUT", f"/allocations/{c}", version="1.38", json={
        "allocations": {u: {"resources": {"VCPU": 2}}}, "project_id": "p", "user_id": "u",
        "consumer_generation": gen + 1})
    assert "'consumer_type' is a required property" in r.text
    r = api("PUT", f"/allocations/{c}", version="1.33", json={
        "allocations": {u: {"resources": {"VCPU": 2}}}, "project_id": "p", "user_id": "u",
        "consumer_generation": gen + 1, "mappings": {"": [u]}})
    assert r.status_code == 400
    r = api("PUT", f"/allocations/{c}", version="1.38", json={
        "allocations": {u: {"resources": {"VCPU": 3}}}, "project_id": "p", "user_id": "u",
        "consumer_generation": gen + 1, "consumer_type": "INSTANCE", "mappings": {"": [u]}})
    assert r.status_code == 204, r.text
    got = api("GET", f"/allocations/{c}", version="1.38").json()
    assert got["consumer_type"] == "INSTANCE" and got["consumer_generation"] == gen + 2
    r = api("GET", f"/resource_providers/{u}/allocations", version="1.27").json()
    assert r["allocations"] == {c: {"resources": {"VCPU": 3}}}
    r = api("GET", f"/resource_providers/{u}/allocations", version="1.28").json()
    assert r["allocations"] == {c: {"resources": {"VCPU": 3}, "consumer_generation": gen + 2}}
    r = api("PUT", f"/allocations/{c}", version="1.12", json={
        "allocations": {u: {"resources": {"VCPU": 9}}}, "project_id": "p", "user_id": "u"})
    assert r.status_code == 409 and "exceed the capacity" in r.text
    r = api("PUT", f"/allocations/{c}", version="1.12", json={
        "allocations": {str(uuid.uuid4()): {"resources": {"VCPU": 1}}},
        "project_id": "p", "user_id": "u"})
    assert r.status_code == 400 and "that does not exist" in r.text
    assert "Malformed consumer_uuid" in api("PUT", "/allocations/not-a-uuid", json={}).text
    r = api("PUT", f"/allocations/{c}", version="1.28", json={
        "allocations": {}, "project_id": "p", "user_id": "u", "consumer_generation": gen + 2})
    assert r.status_code == 204
    assert api("GET", f"/allocations/{c}").json() == {"allocations": {}}
    r = api("DELETE", f"/allocations/{c}")
    assert r.status_code == 404 and "No allocations for consumer" in r.text


def test_post_allocations_and_usages(api: Api) -> None:
    u = new_rp(api, VCPU=8, MEMORY_MB=4096)
    project = str(uuid.uuid4())
    c1, c2 = str(uuid.uuid4()), str(uuid.uuid4())
    assert api("POST", "/allocations", version="1.12", json={}).status_code == 404
    body = {c: {"allocations": {u: {"resources": {"VCPU": 2, "MEMORY_MB": 512}}},
                "project_id": project, "user_id": "u1", "consumer_generation": None,
                "consumer_type": t} for c, t in ((c1, "INSTANCE"), (c2, "MIGRATION"))}
    bad = {**body, str(uuid.uuid4()): {**body[c1], "allocations": {u: {"resources": {"VCPU": 7}}}}}
    r = api("POST", "/allocations", json=bad)
    assert r.status_code == 409  # all or nothing
    assert api("GET", f"/resource_providers/{u}/usages").json()["usages"]["VCPU"] == 0
    assert api("POST", "/allocations", json=body).status_code == 204
    assert api("GET", f"/resource_providers/{u}/usages").json()["usages"] == \
        {"VCPU": 4, "MEMORY_MB": 1024}
    assert api("GET", f"/usages?project_id={project}", version="1.8").status_code == 404
    assert api("GET", "/usages", version="1.9").status_code == 400
    r = api("GET", f"/usages?project_id={project}", version="1.9")
    assert r.json() == {"usages": {"VCPU": 4, "MEMORY_MB": 1024}}
    r = api("GET", f"/usages?project_id={project}&user_id=nobody", version="1.9")
    assert r.json() == {"usages": {}}
    r = api("GET", f"/usages?project_id={project}", version="1.38").json()["usages"]
    assert r["INSTANCE"] == {"consumer_count": 1, "VCPU": 2, "MEMORY_MB": 512}
    r = api("GET", f"/usages?project_id={project}&consumer_type=all").json()["usages"]
    assert r == {"all": {"consumer_count": 2, "VCPU": 4, "MEMORY_MB": 1024}}
    r = api("GET", f"/usages?project_id={project}&consumer_type=ALL").json()["usages"]
    assert r == {}


def test_reshaper(api: Api) -> None:
    root = new_rp(api, VCPU=8, DISK_GB=100)
    child = new_rp(api, parent=root)
    c = str(uuid.uuid4())
    api("PUT", f"/allocations/{c}", version="1.12", json={
        "allocations": {root: {"resources": {"VCPU": 2, "DISK_GB": 10}}},
        "project_id": "p", "user_id": "u"})
    assert api("POST", "/reshaper", version="1.29", json={}).status_code == 404
    assert api("GET", "/reshaper").headers["allow"] == "POST"
    move = {"inventories": {
        root: {"resource_provider_generation": 2, "inventories": {"DISK_GB": {"total": 100}}},
        child: {"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8}}}},
        "allocations": {c: {"allocations": {root: {"resources": {"DISK_GB": 10}},
                                            child: {"resources": {"VCPU": 2}}},
                            "project_id": "p", "user_id": "u", "consumer_generation": 1,
                            "consumer_type": "INSTANCE"}}}
    stale = {**move, "inventories": {**move["inventories"], root: {
        **move["inventories"][root], "resource_provider_generation": 1}}}
    r = api("POST", "/reshaper", json=stale)
    assert r.status_code == 409 and "actual: 2, given: 1" in r.text
    r = api("POST", "/reshaper", json={**move, "allocations": {}})
    assert r.status_code == 409 and err(r)["code"] == "placement.inventory.inuse"
    assert api("POST", "/reshaper", json=move).status_code == 204
    assert api("GET", f"/resource_providers/{child}/usages").json()["usages"] == {"VCPU": 2}
    assert api("GET", f"/resource_providers/{root}/usages").json()["usages"] == {"DISK_GB": 10}


def test_secure_rbac_policy(tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = _start(tmp_path_factory, "secure-rbac")
    try:
        api = Api(proc.url)
        project = str(uuid.uuid4())
        admin = {"x-roles": "admin", "x-project-id": "adminproject"}
        reader = {"x-roles": "reader", "x-project-id": project}
        system_admin = {"x-roles": "admin,member,reader", "openstack-system-scope": "all"}
        assert api("GET", "/resource_providers", token="user", headers=admin).status_code == 200
        assert api("GET", "/resource_providers", token="user",
                   headers={"x-roles": "service"}).status_code == 200
        assert api("GET", "/resource_providers", token="user",
                   headers=system_admin).status_code == 403
        assert api("GET", "/resource_providers", token="user", headers=reader).status_code == 403
        assert api("GET", f"/usages?project_id={project}", token="user",
                   headers=reader).status_code == 200
        assert api("GET", "/usages?project_id=other", token="user",
                   headers=reader).status_code == 403
    finally:
        proc.stop()


async def test_concurrent_http_claims_never_oversubscribe(api: Api, server: ServerProcess) -> None:
    """Many clients claim on a few providers at once over HTTP (invariant 7)."""
    import trio

    rps = [new_rp(api, VCPU=7, MEMORY_MB=2048) for _ in range(2)]
    won: list[tuple[str, int]] = []
    statuses: list[int] = []

    async def client(k: int) -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            for j in range(6):
                rp, vcpu = rps[(k + j) % 2], 1 + (k * j) % 3
                r = await c.put(f"/allocations/{uuid.uuid4()}", headers={
                    "x-auth-token": "admin", "openstack-api-version": "placement 1.28"},
                    json={"allocations": {rp: {"resources": {"VCPU": vcpu, "MEMORY_MB": 256}}},
                          "project_id": "p", "user_id": "u", "consumer_generation": None})
                statuses.append(r.status_code)
                if r.status_code == 204:
                    won.append((rp, vcpu))

    async with trio.open_nursery() as nursery:
        for k in range(8):
            nursery.start_soon(client, k)
    assert set(statuses) <= {204, 409} and 409 in statuses
    for rp in rps:
        usage = api("GET", f"/resource_providers/{rp}/usages").json()["usages"]
        assert usage["VCPU"] == sum(v for r, v in won if r == rp) <= 7
        assert usage["MEMORY_MB"] == 256 * sum(1 for r, _ in won if r == rp) <= 2048


def test_state_survives_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Providers, inventories and allocations are in LMDB, not in memory."""
    data = tmp_path_factory.mktemp("placement-restart")
    argv = ringstack_argv("serve", "placement", "--data", str(data), "--port", "0")
    proc = start_server(argv)
    try:
        api = Api(proc.url)
        u = new_rp(api, VCPU=4)
        c = str(uuid.uuid4())
        assert api("PUT", f"/allocations/{c}", version="1.12", json={
            "allocations": {u: {"resources": {"VCPU": 3}}},
            "project_id": "p", "user_id": "u"}).status_code == 204
    finally:
        proc.kill()  # SIGKILL: acknowledged writes must already be durable
    proc = start_server(argv)
    try:
        api = Api(proc.url)
        assert api("GET", f"/resource_providers/{u}/usages").json() == \
            {"resource_provider_generation": 2, "usages": {"VCPU": 3}}
        assert api("GET", f"/allocations/{c}").json()["allocations"][u]["resources"] == \
            {"VCPU": 3}
    finally:
        proc.stop()
