"""``openstack allocation candidate list`` (osc-placement) against a real
``ringstack serve placement`` process: plain, required traits with a limit,
granular groups with a group policy (three CLI runs: each costs seconds)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid as uuidlib
from pathlib import Path

import httpx
import pytest

from tests.support.procs import ringstack_argv, start_server

OPENSTACK = shutil.which("openstack", path=str(Path(sys.executable).parent)) or \
    shutil.which("openstack")
pytestmark = pytest.mark.skipif(OPENSTACK is None, reason="python-openstackclient not installed")
CN1, CN2 = str(uuidlib.uuid4()), str(uuidlib.uuid4())


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    srv = start_server(ringstack_argv("serve", "placement", "--data",
                                      str(tmp_path_factory.mktemp("osc-ac")), "--port", "0",
                                      "--no-fsync"))
    try:
        with httpx.Client(base_url=srv.url, headers={"x-auth-token": "admin",
                          "openstack-api-version": "placement 1.39"}) as c:
            for u, name, vcpu, traits in ((CN1, "cn1", 8, ["HW_CPU_X86_AVX2"]), (CN2, "cn2", 2, [])):
                assert c.post("/resource_providers", json={"name": name, "uuid": u}).status_code == 200
                r = c.put(f"/resource_providers/{u}/inventories", json={
                    "resource_provider_generation": 0,
                    "inventories": {"VCPU": {"total": vcpu}, "MEMORY_MB": {"total": 2048}}})
                assert r.status_code == 200, r.text
                if traits:
                    r = c.put(f"/resource_providers/{u}/traits", json={
                        "resource_provider_generation": 1, "traits": traits})
                    assert r.status_code == 200, r.text
        yield srv.url
    finally:
        srv.kill()


def osc(url: str, *args: str, version: str = "1.39") -> list[dict]:
    argv = [str(OPENSTACK), "--os-auth-type", "admin_token", "--os-endpoint", url,
            "--os-token", "admin", "--os-placement-api-version", version,
            "allocation", "candidate", "list", *args, "-f", "json"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_openstack_allocation_candidate_list(url):
    rows = osc(url, "--resource", "VCPU=1")
    assert sorted(r["resource provider"] for r in rows) == sorted([CN1, CN2])
    by_rp = {r["resource provider"]: r for r in rows}
    assert by_rp[CN1]["allocation"] == "VCPU=1"
    assert "VCPU=0/8" in by_rp[CN1]["inventory used/capacity"]
    rows = osc(url, "--resource", "VCPU=3", "--required", "HW_CPU_X86_AVX2", "--limit", "5")
    assert [r["resource provider"] for r in rows] == [CN1]
    assert "HW_CPU_X86_AVX2" in rows[0]["traits"]
    rows = osc(url, "--group", "1", "--resource", "VCPU=1", "--group", "2",
               "--resource", "MEMORY_MB=1024", "--group-policy", "none", version="1.29")
    assert len(rows) >= 2 and {r["resource provider"] for r in rows} <= {CN1, CN2}
