"""Processes of ``ringstack dev up``: start each with its output in a log
file (so it outlives a ``--no-wait`` supervisor), read its ``READY`` line
back, and stop it (SIGTERM, then SIGKILL after a grace period) without ever
signalling a pid that is no longer ours."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli import _devcluster as dc

REPO = Path(__file__).resolve().parents[1]
READY_RE = re.compile(r"^READY (\S+) ([0-9.]+):(\d+)\s*$", re.MULTILINE)
STOP_GRACE = 10.0


class Child:
    """A started process whose output goes to its log file (so it survives
    ``--no-wait``); READY is read back from the log."""

    def __init__(self, spec: dc.ProcessSpec, log_path: Path, detach: bool) -> None:
        self.spec = spec
        self.log_path = log_path
        self.offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                list(spec.argv), cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=detach,
            )
        self.port: int | None = None

    def poll_ready(self) -> bool:
        with open(self.log_path, "rb") as f:
            f.seek(self.offset)
            m = READY_RE.search(f.read().decode("utf-8", "replace"))
        if m:
            self.port = int(m.group(3))
        return m is not None

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace")[self.offset:]
        return "\n".join(text.splitlines()[-lines:])

    def argv_with_port(self) -> list[str]:
        argv = list(self.spec.argv)
        if self.port is not None and "--port" in argv:
            argv[argv.index("--port") + 1] = str(self.port)
        return argv


OPTIONAL_ROLES = ("placement", "replicator")  # the object store works without them


def wait_ready(children: list[Child], timeout: float = 90.0,
               interrupted: Callable[[], bool] = lambda: False) -> list[Child]:
    """Wait for every READY line. A storage node or proxy that dies or stays
    silent is fatal (CommandError); an optional process is reported, stopped
    and returned in the list of failures."""
    from cli.main import CommandError

    deadline = time.monotonic() + timeout
    pending = list(children)
    failed: list[Child] = []
    while pending:
        if interrupted():
            raise KeyboardInterrupt
        for child in list(pending):
            if child.poll_ready():
                pending.remove(child)
                continue
            dead = child.proc.poll() is not None
            late = time.monotonic() > deadline
            if not (dead or late):
                continue
            why = (f"exited with status {child.proc.returncode} before it was ready" if dead
                   else f"not ready after {timeout:.0f}s")
            message = f"{child.spec.name} {why} (log {child.log_path}):\n{child.tail()}"
            if child.spec.role not in OPTIONAL_ROLES:
                raise CommandError(message)
            print(f"warning: {message}\n(continuing without {child.spec.name})", flush=True)
            stop_pids([child.proc.pid])
            child.proc.wait()
            pending.remove(child)
            failed.append(child)
        if pending:
            time.sleep(0.05)
    return failed


def stop_pids(pids: list[int], grace: float = STOP_GRACE) -> None:
    """SIGTERM each, SIGKILL what is still alive after ``grace`` seconds."""
    for pid in pids:
        send_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            send_signal(pid, signal.SIGKILL)


def send_signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap our own children
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def is_ours(p: dict[str, Any], data: str) -> bool:
    """Is ``p["pid"]`` still the process we started (never signal a reused pid)?"""
    cmd = cmdline(p["pid"])
    if not cmd:
        return False
    role_args = p["argv"][3:5]  # ("serve", role)
    return all(a in cmd for a in role_args) and any(data in a for a in cmd)


def cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
