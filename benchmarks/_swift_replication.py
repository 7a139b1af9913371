"""The same replication measurements on OpenStack Swift's all-in-one
(``benchmarks/_swift_aio.py``: 4 nodes, one drive each, part power 6),
with Swift's own ``swift-object-replicator --once`` (ssync, as there is no
rsync daemon here).

Objects are written through Swift's proxy; the 1% change is a direct PUT to
node 0's object server with a newer timestamp (so only node 0 holds it, as
in ringstack's run); the wipe removes node 3's ``objects`` directory, then
the replicators of nodes 0-2 run once in parallel and the ``.data`` files
back on node 3 are counted.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import resource
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, urlparse

from benchmarks import _swift_aio

_RING_SCRIPT = """
import json, sys
from swift.common.utils import set_swift_dir
from swift.common.ring import Ring
set_swift_dir(sys.argv[1])
r = Ring(sys.argv[1], ring_name="object")
for name in json.load(sys.stdin):
    part, nodes = r.get_nodes("AUTH_test", "c", name)
    print(json.dumps([name, part, [[n["port"], n["device"]] for n in nodes]]))
"""

# swift-object-replicator reads /etc/swift/swift.conf for the hash suffix (its
# servers are pointed at swift_dir by their WSGI loader; the daemon is not)
_REPLICATOR = ("import sys; from swift.common.utils import set_swift_dir; set_swift_dir(sys.argv[1]); "
               "sys.argv = sys.argv[1:]; from swift.obj.replicator import main; main()")

_PASS_RE = re.compile(r"partitions replicated in ([0-9.]+)s")


def _cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_swift(venv: str, objects: int, size: int) -> dict[str, Any]:
    root = tempfile.mkdtemp(prefix="bench-repl-swift-")
    aio = _swift_aio.start(venv, root)
    try:
        return _measure(aio, venv, root, objects, size)
    finally:
        aio.stop()
        shutil.rmtree(root, ignore_errors=True)


def _measure(aio: Any, venv: str, root: str, objects: int, size: int) -> dict[str, Any]:
    url = urlparse(aio.storage_url)
    names = [f"o{i:08d}" for i in range(objects)]
    body = os.urandom(size)

    def put_range(chunk: list[str]) -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        for n in chunk:
            conn.request("PUT", f"{url.path}/c/{n}", body=body, headers={"X-Auth-Token": aio.token})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 201, resp.status
        conn.close()

    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.request("PUT", f"{url.path}/c", headers={"X-Auth-Token": aio.token})
    conn.getresponse().read()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put_range, [names[i::16] for i in range(16)]))
    res: dict[str, Any] = {"objects": objects, "size": size, "write_seconds": round(time.perf_counter() - t0, 2)}

    py = os.path.join(venv, "bin", "python")
    out = subprocess.run([py, "-c", _RING_SCRIPT, root], input=json.dumps(names), capture_output=True,
                         text=True, check=True).stdout
    placement = {n: (p, devs) for n, p, devs in map(json.loads, out.splitlines())}
    node0 = "d0"
    confs = []
    for i in range(_swift_aio.NODES):
        with open(os.path.join(root, f"object-{i}.conf")) as f:
            text = f.read()
        text = text.replace("[object-replicator]\n", f"[object-replicator]\nsync_method = ssync\nlog_level = INFO\n"
                            f"recon_cache_path = {root}\nconcurrency = 4\n")
        path = os.path.join(root, f"object-replicator-{i}.conf")
        with open(path, "w") as f:
            f.write(text)
        confs.append(path)
    server_pids = [p.pid for p in aio.procs if "object-server" in str(p.args[0])]

    def replicate(nodes: list[int]) -> dict[str, Any]:
        c0, s0, t0 = _children_cpu(), sum(_cpu(p) for p in server_pids), time.perf_counter()
        procs = [subprocess.Popen([py, "-c", _REPLICATOR, root, confs[i], "--once", "-v"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in nodes]
        logs = [p.communicate()[0] for p in procs]
        own = [float(m.group(1)) for log in logs for m in [_PASS_RE.search(log)] if m]
        return {"seconds": round(time.perf_counter() - t0, 3), "pass_seconds_logged": max(own, default=None),
                "replicator_cpu_s": round(_children_cpu() - c0, 3),
                "server_cpu_s": round(sum(_cpu(p) for p in server_pids) - s0, 3)}

    replicate(list(range(_swift_aio.NODES)))  # first pass computes every hashes.pkl
    res["no_change_pass_node0"] = replicate([0])
    mine = [n for n in names if any(d == node0 for _port, d in placement[n][1])]
    changed = random.Random(1).sample(mine, max(1, objects // 100))
    stamp = f"{time.time() + 1:.5f}"
    for n in changed:
        part, devs = placement[n]
        port = next(p for p, d in devs if d == node0)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("PUT", quote(f"/{node0}/{part}/AUTH_test/c/{n}"), body=body,
                  headers={"X-Timestamp": stamp, "Content-Type": "application/octet-stream"})
        assert c.getresponse().status == 201
        c.close()
    res["one_percent_changed_pass_node0"] = {"changed_objects": len(changed), **replicate([0])}

    last = _swift_aio.NODES - 1
    shutil.rmtree(os.path.join(root, f"node{last}", f"d{last}", "objects"), ignore_errors=True)
    expect = sum(1 for n in names if any(d == f"d{last}" for _p, d in placement[n][1]))
    restore = replicate(list(range(last)))
    found = sum(1 for _dp, _dn, files in os.walk(os.path.join(root, f"node{last}", f"d{last}", "objects"))
                for f in files if f.endswith(".data"))
    res["restore_wiped_node_one_round"] = {**restore, "objects_expected": expect, "objects_restored": found}
    return res
