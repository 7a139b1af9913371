"""The pure core of ``ringstack bench cpu``: perf samples to CPU per operation."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.bench_cpu import (
    COMPONENTS,
    component_of,
    context_switches,
    parse_perf_script,
    per_op,
    role_of,
    server_ms,
    switches_per_op,
    table,
    tally,
)

SCRIPT = """\
       0/0     ffffffff9a2c1f4e ([kernel.kallsyms])
    1200/1200  7f00aa001234 (/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0)
    1200/1207  7f00aa005678 (/usr/lib/x86_64-linux-gnu/libcrypto.so.3)
    1200/1207  ffffffff9a3c0000 ([kernel.kallsyms])
    1300/1301  7f00bb000010 (/venv/lib/python3.11/site-packages/_xxhash.cpython-311-x86_64-linux-gnu.so)
    1300/1300  7f00bb000020 (/work/_native/durable.cpython-311-x86_64-linux-gnu.so)
    4242/4242  7f00cc000000 (/usr/lib/x86_64-linux-gnu/libc.so.6)
      77/77    ffffffff9a000000 ([kernel.kallsyms])
not a sample line
    1300/1300  7f00bb000030 ([unknown])
"""


def test_perf_script_lines_become_pid_tid_and_object() -> None:
    samples = list(parse_perf_script(SCRIPT.splitlines()))
    assert len(samples) == 9
    assert samples[0] == (0, 0, "[kernel.kallsyms]")
    assert samples[2] == (1200, 1207, "/usr/lib/x86_64-linux-gnu/libcrypto.so.3")
    assert samples[-1] == (1300, 1300, "[unknown]")


@pytest.mark.parametrize(("dso", "component"), [
    ("[kernel.kallsyms]", "kernel"),
    ("/usr/lib/libpython3.11.so.1.0", "interpreter"),
    ("/lib/x86_64-linux-gnu/libcrypto.so.3", "MD5"),
    ("/v/_xxhash.cpython-311-x86_64-linux-gnu.so", "checksum"),
    ("/v/blake3.cpython-311-x86_64-linux-gnu.so", "checksum"),
    ("/lib/x86_64-linux-gnu/libc.so.6", "other native"),
    ("[unknown]", "other native"),
])
def test_each_shared_object_has_one_component(dso: str, component: str) -> None:
    assert component_of(dso) == component


@pytest.mark.parametrize(("cmdline", "role"), [
    (["/v/bin/python3", "-m", "cli.main", "serve", "proxy", "--config", "x.toml"], "proxy"),
    (["/v/bin/python3", "-m", "cli.main", "serve", "storage", "--drives", "d1=/x"], "storage node"),
    (["/s/bin/python3", "/s/bin/swift-proxy-server", "/x/proxy.conf"], "proxy"),
    (["/s/bin/python3", "/s/bin/swift-object-server", "/x/object-0.conf"], "object server"),
    (["/s/bin/python3", "/s/bin/swift-container-server", "/x/c.conf"], "container server"),
    (["/s/bin/python3", "/s/bin/swift-account-server", "/x/a.conf"], "account server"),
    (["memcached", "-p", "11211"], None),  # not a server role: its samples count as "other"
    (["/usr/bin/python3", "something-else"], None),
    ([], None),
])
def test_server_roles_come_from_the_command_line(cmdline: list[str], role: str | None) -> None:
    assert role_of(cmdline) == role


def test_samples_are_charged_to_role_thread_and_component() -> None:
    counts = tally(parse_perf_script(SCRIPT.splitlines()), {1200: "proxy", 1300: "storage node"}, client_pid=4242)
    assert counts == Counter({
        ("idle", "", ""): 1,
        ("proxy", "main", "interpreter"): 1,
        ("proxy", "workers", "MD5"): 1,
        ("proxy", "workers", "kernel"): 1,
        ("storage node", "workers", "checksum"): 1,
        ("storage node", "main", "other native"): 2,
        ("load generator", "main", "other native"): 1,
        ("other", "main", "kernel"): 1,
    })


def test_shares_become_milliseconds_per_operation() -> None:
    # 10 samples over 2 s on 2 cores = 4 CPU-seconds; 40 operations in the window:
    # one sample is 4 s / 10 / 40 = 10 ms per operation.
    counts = Counter({("proxy", "main", "interpreter"): 3, ("proxy", "workers", "MD5"): 2,
                      ("storage node", "workers", "kernel"): 4, ("idle", "", ""): 1})
    fig = per_op(counts, window_s=2.0, cpus=2, ops=40)
    assert fig["samples"] == 10
    proxy = fig["ms_per_op"]["proxy"]
    assert proxy["interpreter"] == 30.0 and proxy["MD5"] == 20.0 and proxy["kernel"] == 0.0
    assert proxy["main thread"] == 30.0 and proxy["total"] == 50.0
    assert fig["ms_per_op"]["storage node"]["total"] == 40.0
    assert fig["ms_per_op"]["idle"] == {"idle": 10.0, "total": 10.0}
    assert server_ms(fig["ms_per_op"], "kernel") == 40.0  # servers only: never the idle share
    assert server_ms(fig["ms_per_op"], "interpreter") == 30.0
    text = table("ringstack", "PUT", fig, {"proxy": 55.0})
    assert "proxy" in text and "55" in text and "storage node" in text


@given(st.lists(st.tuples(st.sampled_from(["proxy", "storage node", "idle", "other"]),
                          st.sampled_from(["main", "workers"]), st.sampled_from(COMPONENTS)), min_size=1),
       st.floats(0.5, 20), st.integers(1, 64), st.floats(1, 1e4))
def test_the_roles_add_up_to_the_whole_machine(rows: list[tuple[str, str, str]], window: float, cpus: int,
                                               ops: float) -> None:
    counts = Counter(("idle", "", "") if r == "idle" else (r, t, c) for r, t, c in rows)
    fig = per_op(counts, window, cpus, ops)
    whole = window * cpus * 1000 / ops
    assert sum(r["total"] for r in fig["ms_per_op"].values()) == pytest.approx(whole, rel=1e-2, abs=0.05)


def test_context_switches_are_counted_from_status_and_only_for_threads_seen_twice() -> None:
    status = ["Name:\tpython3\n", "voluntary_ctxt_switches:\t120\n", "nonvoluntary_ctxt_switches:\t7\n"]
    assert context_switches(status) == 127
    before = {("proxy", 1): 100, ("proxy", 2): 50, ("storage node", 3): 10}
    after = {("proxy", 1): 300, ("proxy", 2): 150, ("storage node", 4): 999}  # thread 3 gone, 4 new
    assert switches_per_op(before, after, ops=10) == {"proxy": 30.0}


def test_without_perf_bench_all_skips_it_and_bench_cpu_says_why(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import types

    from benchmarks import bench_cpu
    from benchmarks import cli as bench_cli
    from cli.main import CommandError

    monkeypatch.setattr(bench_cpu.shutil, "which", lambda name: None)
    ran: list[str] = []
    other = types.SimpleNamespace(run=lambda args: ran.append(args.out))
    monkeypatch.setattr(bench_cli, "discover", lambda: {"cpu": bench_cpu, "other": other})
    assert bench_cli._run_all(argparse.Namespace(out="/tmp/x")) == 0
    assert ran == ["/tmp/x"]  # the rest still runs
    assert "# bench cpu skipped: needs perf" in capsys.readouterr().out
    with pytest.raises(CommandError, match="needs perf"):
        bench_cpu.run(argparse.Namespace(record=6.0, seconds=16.0))
