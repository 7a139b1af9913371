"""The OpenStack command line users have (python-openstackclient with
osc-placement) against a real ``ringstack serve placement`` process, with
a noauth2-style token: ``--os-auth-type admin_token --os-token admin``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import ServerProcess, ringstack_argv, start_server

OPENSTACK = shutil.which("openstack", path=str(Path(sys.executable).parent)) or \
    shutil.which("openstack")
pytestmark = pytest.mark.skipif(OPENSTACK is None, reason="python-openstackclient not installed")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("placement-osc")
    proc = start_server(ringstack_argv("serve", "placement", "--data", str(data), "--port", "0",
                                       "--no-fsync"))
    yield proc
    proc.stop()


def osc(server: ServerProcess, *args: str, version: str = "1.39") -> object:
    argv = [str(OPENSTACK), "--os-auth-type", "admin_token", "--os-endpoint", server.url,
            "--os-token", "admin", "--os-placement-api-version", version, *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if "-f" in args and out.stdout.strip() else out.stdout


def test_openstack_resource_provider_workflow(server: ServerProcess) -> None:
    rp = osc(server, "resource", "provider", "create", "compute-1", "-f", "json")
    assert isinstance(rp, dict) and rp["name"] == "compute-1" and rp["generation"] == 0
    uuid = rp["uuid"]
    invs = osc(server, "resource", "provider", "inventory", "set", uuid,
               "--resource", "VCPU=8", "--resource", "MEMORY_MB=4096",
               "--resource", "VCPU:allocation_ratio=2.0", "-f", "json")
    by_class = {row["resource_class"]: row for row in invs}  # type: ignore[union-attr]
    assert by_class["VCPU"]["total"] == 8 and by_class["VCPU"]["allocation_ratio"] == 2.0
    osc(server, "resource", "provider", "allocation", "set",
        "11111111-2222-3333-4444-555555555555",
        "--allocation", f"rp={uuid},VCPU=4,MEMORY_MB=1024",
        "--project-id", "p1", "--user-id", "u1", "-f", "json", version="1.12")
    usage = osc(server, "resource", "provider", "usage", "show", uuid, "-f", "json")
    assert {row["resource_class"]: row["usage"] for row in usage} == \
        {"VCPU": 4, "MEMORY_MB": 1024}  # type: ignore[union-attr]
    listed = osc(server, "resource", "provider", "list", "--resource", "VCPU=12", "-f", "json")
    assert [r["uuid"] for r in listed] == [uuid]  # type: ignore[union-attr]
    listed = osc(server, "resource", "provider", "list", "--resource", "VCPU=12",
                 "--resource", "MEMORY_MB=3073", "-f", "json")
    assert listed == []
