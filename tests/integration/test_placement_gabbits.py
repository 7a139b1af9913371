"""OpenStack Placement's own gabbi suite against ``ringstack serve placement``.

Opt-in (it starts one server per file, a few minutes in all):

    RINGSTACK_PLACEMENT_GABBITS=/path/to/placement/tests/functional/gabbits \\
        .venv/bin/python -m pytest tests/integration/test_placement_gabbits.py

(the directory ships inside the ``openstack-placement`` package; ``gabbi``
must be installed). Placement's fixtures set up state through its database;
here the ones this suite supports are recreated through the HTTP API with
the same shapes and resulting generations. Files needing other fixtures are
skipped with the fixture named.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.procs import ringstack_argv, start_server

GABBITS = os.environ.get("RINGSTACK_PLACEMENT_GABBITS", "")
GABBI_RUN = shutil.which("gabbi-run", path=str(Path(sys.executable).parent))
yaml = pytest.importorskip("yaml") if GABBITS else None
pytestmark = pytest.mark.skipif(not GABBITS or GABBI_RUN is None,
                                reason="set RINGSTACK_PLACEMENT_GABBITS and install gabbi")
SUPPORTED = {"APIFixture", "AllocationFixture", "SecureRBACPolicyFixture",
             "LegacyRBACPolicyFixture", "OpenPolicyFixture"}
ENV_UUIDS = ("RP_UUID", "RP_NAME", "RP_UUID1", "RP_NAME1", "RP_UUID2", "RP_NAME2",
             "PROJECT_ID", "ADMIN_PROJECT_ID", "SERVICE_PROJECT_ID", "USER_ID",
             "PROJECT_ID_ALT", "USER_ID_ALT", "INSTANCE_UUID", "MIGRATION_UUID",
             "CONSUMER_UUID", "PARENT_PROVIDER_UUID", "ALT_PARENT_PROVIDER_UUID")


def _files() -> list[str]:
    if not GABBITS or not Path(GABBITS).is_dir():
        return []
    return sorted(p.name for p in Path(GABBITS).glob("*.yaml"))


def _api_fixture_env() -> dict[str, str]:
    env = {k: str(uuid.uuid4()) for k in ENV_UUIDS}
    env.update(CUSTOM_RES_CLASS="CUSTOM_IRON_NFV", CUSTOM_RES_CLASS1="CUSTOM_IRON_NFV1",
               CUSTOM_RES_CLASS2="CUSTOM_IRON_NFV2")
    return env


def _allocation_fixture(url: str, env: dict[str, str]) -> None:
    """Placement's AllocationFixture: one provider (generation 5 after it),
    three consumers (generation 1 each)."""
    c = httpx.Client(base_url=url, headers={"x-auth-token": "admin",
                                            "openstack-api-version": "placement 1.12"})
    env["ALT_USER_ID"] = str(uuid.uuid4())
    rp = env["RP_UUID"]
    assert c.post("/resource_providers", json={"name": env["RP_NAME"], "uuid": rp}).is_success
    for inv in ({"resource_class": "DISK_GB", "total": 2048, "step_size": 10, "min_unit": 10,
                 "max_unit": 1000}, {"resource_class": "VCPU", "total": 10, "max_unit": 10}):
        assert c.post(f"/resource_providers/{rp}/inventories", json=inv).status_code == 201
    for name, user, res in (("CONSUMER_0", env["USER_ID"], {"DISK_GB": 1000}),
                            ("CONSUMER_ID", env["USER_ID"], {"VCPU": 6}),
                            ("ALT_CONSUMER_ID", env["ALT_USER_ID"], {"DISK_GB": 20, "VCPU": 1})):
        env[name] = str(uuid.uuid4())
        r = c.put(f"/allocations/{env[name]}", json={
            "allocations": {rp: {"resources": res}}, "project_id": env["PROJECT_ID"],
            "user_id": user})
        assert r.status_code == 204, r.text
    env["ALT_RP_UUID"], env["ALT_RP_NAME"] = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.parametrize("name", _files())
def test_placement_gabbit(name: str, tmp_path: Path) -> None:
    assert yaml is not None
    doc = yaml.safe_load((Path(GABBITS) / name).read_text())
    fixtures = set(doc.pop("fixtures", None) or [])
    if not fixtures <= SUPPORTED:
        pytest.skip(f"needs fixtures {sorted(fixtures - SUPPORTED)}")
    policy = ("secure-rbac" if "SecureRBACPolicyFixture" in fixtures
              else "open" if "OpenPolicyFixture" in fixtures else "legacy")
    server = start_server(ringstack_argv("serve", "placement", "--data", str(tmp_path / "data"),
                                         "--port", "0", "--policy", policy, "--no-fsync",
                                         "--log-level", "WARNING"))
    try:
        env = _api_fixture_env()
        if "AllocationFixture" in fixtures:
            _allocation_fixture(server.url, env)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=tmp_path, delete=False) as f:
            yaml.safe_dump(doc, f)
        out = subprocess.run([str(GABBI_RUN), f"{server.host}:{server.port}", "--", f.name],
                             capture_output=True, text=True, env={**os.environ, **env},
                             timeout=300)
        assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-6000:]
    finally:
        server.stop()
