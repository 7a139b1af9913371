"""``ringstack dev up`` as users run it (what ``make run`` calls): a real
subprocess, cluster.json, the swift command against it, SIGINT stops all.
Uses a non-default proxy port and free storage ports so it never collides
with a developer's running cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from cli import _devcluster as dc
from tests.support.procs import REPO, ringstack_argv

SWIFT = str(Path(sys.executable).with_name("swift"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_dev_up_swift_roundtrip_and_sigint(tmp_path):
    data = tmp_path / "devdata"
    port = dc.free_ports(1)[0]
    argv = ringstack_argv("dev", "up", "--data", str(data), "--port", str(port), "--base-port", "0",
                          "--placement-port", "0", "--part-power", "6")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    up = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "cluster is up" in line:
                up.set()
        up.set()

    threading.Thread(target=pump, daemon=True).start()
    pids: list[int] = []
    try:
        assert up.wait(120), "".join(lines)
        assert proc.poll() is None, "".join(lines)
        desc = json.loads((data / "cluster.json").read_text())
        assert desc["state"] == "running"
        assert desc["config"] == str((data / "ringstack.toml").resolve())
        roles = [p["role"] for p in desc["processes"]]
        assert roles.count("storage") == 4 and roles.count("proxy") == 1
        proxy = next(p for p in desc["processes"] if p["role"] == "proxy")
        assert proxy["port"] == port and proxy["argv"][-2:] == ["--port", str(port)]
        assert len(desc["drives"]) == 8 and len({d["zone"] for d in desc["drives"]}) == 4
        assert {u["user"] for u in desc["users"]} >= {"admin:admin", "test:tester", "test:tester3", "test2:tester2"}
        pids = [p["pid"] for p in desc["processes"]]
        assert all(_alive(pid) for pid in pids)
        banner = "".join(lines)
        assert f"swift -A http://127.0.0.1:{port}/auth/v1.0 -U test:tester -K testing" in banner

        placement = next(p for p in desc["processes"] if p["role"] == "placement")
        req = urllib.request.Request(f"{desc['placement_url']}/scheduler/hosts", headers={
            "x-auth-token": "admin", "openstack-api-version": "placement latest"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            hosts = json.loads(resp.read())["hosts"]
        assert sorted(h["name"] for h in hosts) == ["node1", "node2", "node3", "node4"]
        assert placement["port"] == int(desc["placement_url"].rsplit(":", 1)[1])
        # a new cluster shows the scheduler at work: three demo VMs on three hosts (soft anti-affinity)
        demo = desc["demo_instances"]
        assert sorted(i["name"] for i in demo) == ["demo-1", "demo-2", "demo-3"]
        assert len({i["host"] for i in demo}) == 3 and {i["host"] for i in demo} <= {h["name"] for h in hosts}
        assert "scheduled   demo-" in banner and "schedule list" in banner
        listed = subprocess.run(ringstack_argv("schedule", "list"), cwd=REPO, capture_output=True, text=True,
                                timeout=60, env={**os.environ, "RINGSTACK_PLACEMENT_URL": desc["placement_url"]})
        assert listed.returncode == 0, listed.stderr
        assert all(i["name"] in listed.stdout and i["host"] in listed.stdout for i in demo), listed.stdout

        auth = ["-A", f"http://127.0.0.1:{port}/auth/v1.0", "-U", "test:tester", "-K", "testing"]
        (tmp_path / "hello.txt").write_bytes(b"hello from dev up\n" * 1000)
        for args in (["upload", "box", "hello.txt"], ["list", "box"], ["download", "box", "hello.txt", "-o", "got"]):
            done = subprocess.run([SWIFT, *auth, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            if args[0] == "list":
                assert done.stdout.split() == ["hello.txt"]
        assert (tmp_path / "got").read_bytes() == (tmp_path / "hello.txt").read_bytes()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            for pid in pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            raise
    assert proc.returncode == 0, "".join(lines)
    assert not [pid for pid in pids if _alive(pid)]
    assert json.loads((data / "cluster.json").read_text())["state"] == "stopped"
