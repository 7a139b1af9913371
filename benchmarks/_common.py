"""Shared benchmark plumbing: timing, peak memory, JSON output, PNG plots.

Only the standard library is imported at module level so helper scripts run
under another interpreter (OpenStack Swift's venv) can import this file too;
matplotlib is imported (with the Agg backend) only when a plot is drawn.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass(slots=True)
class Measure:
    """What ``measure()`` found: wall seconds and peak memory above the start, MiB."""

    seconds: float = 0.0
    peak_mib: float = 0.0


@contextmanager
def measure() -> Iterator[Measure]:
    """Time a block and report its peak resident memory above where it started.

    On Linux the RSS high-water mark is reset first, so the figure is the
    block's own peak; elsewhere ``ru_maxrss`` growth is a lower bound.
    """
    m = Measure()
    reset = _reset_peak_rss()
    before = _status_kib("VmRSS") if reset else None
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - t0
        hwm = _status_kib("VmHWM") if reset else None
        if before is not None and hwm is not None:
            m.peak_mib = max(0, hwm - before) / 1024
        else:
            m.peak_mib = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before) / 1024


def rate(count: int, fn: Callable[[], Any]) -> float:
    """Operations per second of ``fn`` doing ``count`` operations."""
    t0 = time.perf_counter()
    fn()
    return count / max(time.perf_counter() - t0, 1e-9)


def emit(name: str, result: Any, out_dir: str | None) -> str | None:
    """Print ``result`` as JSON on stdout and save it as ``<out_dir>/<name>.json``."""
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    sys.stdout.flush()
    if not out_dir:
        return None
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        f.write(text + "\n")
    return path


def bar_plot(
    path: str,
    title: str,
    groups: Sequence[str],
    series: dict[str, Sequence[float | None]],
    ylabel: str,
    log: bool = False,
) -> str:
    """Grouped bar chart (one group per case, one bar per implementation) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(series))
    for k, (label, values) in enumerate(series.items()):
        xs = [i + k * width for i in range(len(groups))]
        ys = [0.0 if v is None else float(v) for v in values]
        ax.bar(xs, ys, width=width, label=label)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(groups))])
    crowded = len(groups) > 5
    ax.set_xticklabels(groups, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if log:
        ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


READY_RE = re.compile(r"^READY (\S+) ([0-9.]+):(\d+)\s*$")


def start_storage_node(drive: str, *, group_commit: bool = True,
                       log_level: str = "WARNING") -> tuple[subprocess.Popen[str], int]:
    """Start ``ringstack serve storage`` on one drive directory and a free
    port; return the process and the port from its READY line."""
    argv = [sys.executable, "-m", "cli.main", "serve", "storage", "--drives", f"d1={drive}",
            "--port", "0", "--log-level", log_level]
    if not group_commit:
        argv.append("--no-group-commit")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(argv, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = READY_RE.match(line.strip())
        if m:
            return proc, int(m.group(3))
    proc.wait()
    raise RuntimeError(f"storage server exited {proc.returncode} before READY")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank below), 0.0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]
