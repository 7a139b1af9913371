"""common.memory: the glibc policy that keeps freed blocks for reuse."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.procs import REPO

PROBE = "from common.memory import keep_freed_memory as k; print(k(), k())"


def _run(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env={**os.environ, **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_applied_once_on_glibc_and_idempotent() -> None:
    if os.confstr("CS_GNU_LIBC_VERSION") is None:  # pragma: no cover - not glibc
        assert _run({}) == "False False"
    else:
        assert _run({}) == "True True"


def test_switched_off_by_the_environment() -> None:
    assert _run({"RINGSTACK_MALLOC_TUNING": "0"}) == "False False"
