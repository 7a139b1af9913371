"""Start real ringstack server processes for integration and fault tests.

Contract with every ``ringstack serve ...`` command: once it listens it prints
one line ``READY <role> <host>:<port>`` to stdout (flushed). ``--port 0`` picks
a free port; the READY line says which. No test sleeps to wait for a server.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY_RE = re.compile(r"^READY (\S+) ([0-9.]+):(\d+)\s*$")


def ringstack_argv(*args: str) -> list[str]:
    """argv that runs the ringstack CLI with this interpreter."""
    return [sys.executable, "-m", "cli.main", *args]


@dataclass
class ServerProcess:
    argv: list[str]
    proc: subprocess.Popen[str]
    role: str
    host: str
    port: int
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def start_server(argv: Sequence[str], *, timeout: float = 30.0, env: dict[str, str] | None = None) -> ServerProcess:
    """Start ``argv`` and wait for its READY line; raise with its output if it dies first."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        list(argv), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env
    )
    lines: list[str] = []
    found: list[re.Match[str]] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if not found:
                m = READY_RE.match(line.strip())
                if m:
                    found.append(m)
                    ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{argv} not ready in {timeout}s:\n" + "\n".join(lines[-40:]))
    if not found:
        proc.wait(5)
        raise RuntimeError(f"{argv} exited {proc.returncode} before READY:\n" + "\n".join(lines[-40:]))
    m = found[0]
    return ServerProcess(list(argv), proc, m.group(1), m.group(2), int(m.group(3)), lines)
