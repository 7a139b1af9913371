"""``ringstack bench memory``: what fresh memory and the page cache cost here.

Two machine facts behind two storage decisions (docs/DECISIONS.md):

- *fresh memory*: building a 4 MiB body from 256 KiB pieces, with glibc's
  default thresholds (each big block a fresh mapping, faulted in page by
  page) and with ``common.memory.keep_freed_memory`` (freed blocks reused).
  Each variant runs in a child process, since the policy is per process.
- *page cache*: writing a new 4 MiB file and fdatasyncing it, buffered and
  with ``O_DIRECT`` (through ``storage_node.drive``'s temp file in 256 KiB
  pieces, as a PUT does), plus reading such a file back cold and hot. One
  more cell writes the 4 MiB buffered in a single ``write`` call: on the
  development VM that costs ~8x the same bytes in 256 KiB calls.

CPU is ``time.process_time`` of the process doing it, the figure that
contention on a shared machine disturbs least.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import bar_plot, emit

HELP = "fresh vs reused memory, buffered vs O_DIRECT 4 MiB writes: CPU and wall ms"
SIZE = 4 << 20
PIECE = 256 << 10

_CHILD = """
import json, os, sys, time
if sys.argv[1] == "keep":
    from common.memory import keep_freed_memory
    assert keep_freed_memory()
data = os.urandom({size})
n = int(sys.argv[2])
c = time.process_time()
for _ in range(n):
    body = b"".join([data[j:j + {piece}] for j in range(0, len(data), {piece})])
    del body
print(json.dumps({{"cpu_ms": (time.process_time() - c) / n * 1000}}))
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rounds", type=int, default=30, help="repetitions per cell (default: 30)")
    p.add_argument("--dir", default=None, help="where the files go (default: a temp dir under the cwd's volume)")


def _fresh_memory(rounds: int) -> dict[str, float]:
    out = {}
    repo = Path(__file__).resolve().parents[1]
    code = _CHILD.format(size=SIZE, piece=PIECE)
    for mode in ("default", "keep"):  # a plain ``python -c``: glibc's defaults unless "keep"
        done = subprocess.run([sys.executable, "-c", code, mode, str(rounds)], cwd=repo,
                              capture_output=True, text=True, check=True)
        out[mode] = round(json.loads(done.stdout)["cpu_ms"], 3)
    return out


def _timed(rounds: int, fn: Any) -> dict[str, float]:
    c, w = time.process_time(), time.perf_counter()
    for i in range(rounds):
        fn(i)
    return {"cpu_ms": round((time.process_time() - c) / rounds * 1000, 3),
            "wall_ms": round((time.perf_counter() - w) / rounds * 1000, 3)}


def _page_cache(rounds: int, where: str) -> dict[str, dict[str, float]]:
    from storage_node.drive import DiskDrives

    drives = DiskDrives()
    data = os.urandom(SIZE)
    root = Path(where)
    out = {}
    k = [0]

    def one_call(i: int) -> None:  # not what a PUT does: shows why no write may exceed 1 MiB
        k[0] += 1
        fd = os.open(root / f"one-{k[0]}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    out["write_buffered_one_call"] = _timed(rounds, one_call)
    for mode, direct in (("buffered", False), ("o_direct", True)):
        def write(i: int, direct: bool = direct, mode: str = mode) -> None:
            tmp = drives.open_temp(root, direct)
            for j in range(0, SIZE, PIECE):
                tmp.write(data[j:j + PIECE])
            tmp.fsync()
            tmp.commit(root / mode, f"{i}.data")
        out[f"write_{mode}"] = _timed(rounds, write)

    def read(i: int) -> None:
        fd = os.open(root / "o_direct" / f"{i}.data", os.O_RDONLY)
        try:
            for off in range(0, SIZE, 1 << 20):
                os.pread(fd, 1 << 20, off)
        finally:
            os.close(fd)
    out["read_cold"] = _timed(rounds, read)  # written with O_DIRECT: not in the page cache
    out["read_hot"] = _timed(rounds, read)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=args.dir or os.getcwd()) as where:
        result = {"size": SIZE, "piece": PIECE, "rounds": args.rounds,
                  "fresh_memory_cpu_ms": _fresh_memory(args.rounds),
                  "page_cache": _page_cache(args.rounds, where)}
    emit("memory", result, args.out)
    if args.out:
        pc = result["page_cache"]
        cells = ["write_buffered_one_call", "write_buffered", "write_o_direct", "read_cold", "read_hot"]
        bar_plot(os.path.join(args.out, "memory_page_cache.png"), "4 MiB file: write+fdatasync, read",
                 cells, {"CPU ms": [pc[c]["cpu_ms"] for c in cells], "wall ms": [pc[c]["wall_ms"] for c in cells]},
                 "ms", log=True)
    return result
