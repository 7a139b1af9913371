"""Fault tests with a real storage process: kill -9 during a PUT (FAULTS 1, 3)."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import httpx

from tests.support.procs import ringstack_argv, start_server


def _tmp(root: Path) -> list[Path]:
    return list((root / "tmp").iterdir()) if (root / "tmp").is_dir() else []


def test_kill_9_mid_put_leaves_the_acknowledged_and_nothing_else(tmp_path):
    drive = tmp_path / "d1"
    drive.mkdir()
    argv = ringstack_argv("serve", "storage", "--drives", f"d1={drive}", "--port", "0")
    proc = start_server(argv)
    try:
        with httpx.Client(timeout=10) as c:
            r = c.put(f"{proc.url}/d1/1/a/c/acked", content=b"acknowledged" * 1000,
                      headers={"X-Timestamp": "1700000001.00000"})
            assert r.status_code == 201
        with socket.create_connection((proc.host, proc.port)) as s:
            s.sendall(b"PUT /d1/1/a/c/torn HTTP/1.1\r\nHost: x\r\nX-Timestamp: 1700000002.00000\r\n"
                      b"Content-Length: 8388608\r\n\r\n" + b"t" * (3 << 20))
            deadline = time.monotonic() + 10
            while not _tmp(drive) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert _tmp(drive), "the PUT never reached its temp file"
            proc.kill(signal.SIGKILL)  # crash before fsync and rename
        assert _tmp(drive)  # the crash left its temp file behind
    finally:
        proc.kill()
    proc = start_server(argv)
    try:
        assert _tmp(drive) == []  # the dead writer's temp file is gone
        with httpx.Client(timeout=10) as c:
            assert c.get(f"{proc.url}/d1/1/a/c/acked").content == b"acknowledged" * 1000  # invariant 1
            assert c.get(f"{proc.url}/d1/1/a/c/torn").status_code == 404  # never torn (invariant 5)
    finally:
        proc.stop()
