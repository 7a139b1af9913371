"""An OpenStack Swift all-in-one on loopback, for side-by-side object benchmarks.

Four storage nodes (one object, container and account server each, one drive
per node in its own zone), a memcached (Swift's tempauth and info caching
need it), rings built with ``swift-ring-builder``, and a proxy with Swift's
usual pipeline (catch_errors gatekeeper healthcheck proxy-logging cache
tempauth copy slo dlo proxy-server). Every process is started here in its own
session and stopped by its own process group at ``stop()``.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

NODES = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.args} did not listen on {port} in {timeout}s")


@dataclass
class SwiftAIO:
    root: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    proxy_proc: subprocess.Popen[bytes] | None = None
    storage_url: str = ""
    token: str = ""

    @property
    def pids(self) -> list[int]:
        """Server processes (proxy + storage; not memcached, a cache Swift needs)."""
        return [p.pid for p in self.procs if p.args[0] != "memcached"]  # type: ignore[index]

    @property
    def proxy_pids(self) -> list[int]:
        return [self.proxy_proc.pid] if self.proxy_proc else []

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


def _log(root: str, name: str) -> int:
    return os.open(os.path.join(root, f"{name}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _conf(path: str, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return path


def start(venv: str, root: str, *, workers: int = 1) -> SwiftAIO:
    os.makedirs(root, exist_ok=True)
    aio = SwiftAIO(root)
    binp = os.path.join(venv, "bin")
    try:
        _conf(os.path.join(root, "swift.conf"),
              "[swift-hash]\nswift_hash_path_suffix = ringstackbench\n\n"
              "[storage-policy:0]\nname = gold\ndefault = yes\n")
        ports = {kind: [_free_port() for _ in range(NODES)] for kind in ("object", "container", "account")}
        for kind, plist in ports.items():
            builder = os.path.join(root, f"{kind}.builder")
            subprocess.run([os.path.join(binp, "swift-ring-builder"), builder, "create", "6", "3", "1"],
                           check=True, capture_output=True)
            for i, port in enumerate(plist):
                subprocess.run([os.path.join(binp, "swift-ring-builder"), builder, "add",
                                f"r1z{i + 1}-127.0.0.1:{port}/d{i}", "1"], check=True, capture_output=True)
            subprocess.run([os.path.join(binp, "swift-ring-builder"), builder, "rebalance"],
                           capture_output=True)
        mport = _free_port()
        if shutil.which("memcached") is None:
            raise RuntimeError("memcached is not installed (Swift's tempauth needs it)")
        as_root = ["-u", "root"] if os.geteuid() == 0 else []
        mc = subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(mport), "-U", "0", "-m", "64", *as_root],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        aio.procs.append(mc)
        _wait_port(mport, mc)
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
        common = (f"[DEFAULT]\nbind_ip = 127.0.0.1\nworkers = {workers}\nswift_dir = {root}\n"
                  f"user = {user}\nmount_check = false\nlog_level = WARNING\n")
        for i in range(NODES):
            devices = os.path.join(root, f"node{i}")
            os.makedirs(os.path.join(devices, f"d{i}"), exist_ok=True)
            for kind in ("object", "container", "account"):
                conf = _conf(os.path.join(root, f"{kind}-{i}.conf"),
                             common + f"devices = {devices}\nbind_port = {ports[kind][i]}\n\n"
                             f"[pipeline:main]\npipeline = {kind}-server\n\n"
                             f"[app:{kind}-server]\nuse = egg:swift#{kind}\n\n"
                             f"[{kind}-replicator]\n[{kind}-updater]\n[{kind}-auditor]\n")
                p = subprocess.Popen([os.path.join(binp, f"swift-{kind}-server"), conf],
                                     stdout=_log(root, f"{kind}-{i}"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
                aio.procs.append(p)
        pport = _free_port()
        pconf = _conf(os.path.join(root, "proxy.conf"), common + f"bind_port = {pport}\n\n"
                      "[pipeline:main]\npipeline = catch_errors gatekeeper healthcheck proxy-logging cache "
                      "tempauth copy slo dlo proxy-logging proxy-server\n\n"
                      "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
                      "[filter:tempauth]\nuse = egg:swift#tempauth\nuser_test_tester = testing .admin\n\n"
                      f"[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:{mport}\n\n"
                      "[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
                      "[filter:gatekeeper]\nuse = egg:swift#gatekeeper\n\n"
                      "[filter:healthcheck]\nuse = egg:swift#healthcheck\n\n"
                      "[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n\n"
                      "[filter:copy]\nuse = egg:swift#copy\n\n"
                      "[filter:slo]\nuse = egg:swift#slo\n\n"
                      "[filter:dlo]\nuse = egg:swift#dlo\n")
        aio.proxy_proc = subprocess.Popen([os.path.join(binp, "swift-proxy-server"), pconf],
                                          stdout=_log(root, "proxy"), stderr=subprocess.STDOUT,
                                          start_new_session=True)
        aio.procs.append(aio.proxy_proc)
        for p, port in zip(aio.procs[1:], [x for i in range(NODES) for x in
                                            (ports["object"][i], ports["container"][i], ports["account"][i])]
                           + [pport], strict=True):
            _wait_port(port, p)
        conn = http.client.HTTPConnection("127.0.0.1", pport, timeout=30)
        conn.request("GET", "/auth/v1.0", headers={"X-Auth-User": "test:tester", "X-Auth-Key": "testing"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"Swift tempauth answered {resp.status}")
        aio.token = resp.getheader("x-auth-token") or ""
        aio.storage_url = resp.getheader("x-storage-url") or ""
        conn.close()
    except BaseException:
        aio.stop()
        raise
    return aio
