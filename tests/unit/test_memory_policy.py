"""common.memory: the glibc policy that keeps freed blocks for reuse, and the
pool of large I/O buffers."""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import sys

from common.memory import BufferPool
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


def test_a_buffer_pool_reuses_buffers_and_keeps_no_more_than_it_may() -> None:
    pool = BufferPool(1 << 16, keep=2)
    bufs = [pool.take() for _ in range(4)]
    assert len({id(b) for b in bufs}) == 4 and all(len(b) == 1 << 16 for b in bufs)
    for b in bufs:
        pool.give(b)
    assert pool.idle == 2  # the other two were dropped
    again = pool.take()
    assert any(again is b for b in bufs[:2])  # a kept one, not a fresh mapping
    fresh = pool.take()
    assert ctypes.addressof(ctypes.c_char.from_buffer(fresh)) % mmap.PAGESIZE == 0  # O_DIRECT needs it
