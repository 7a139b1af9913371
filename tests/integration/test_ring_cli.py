"""``ringstack ring`` as an operator runs it: real processes on temp dirs.

Every bad input must exit non-zero with one ``error:`` line (no traceback)
and leave the builder file byte-for-byte unchanged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ring.hashing import get_partition
from ring.lookup import Ring
from ring.ringfile import read_ring
from tests.support.procs import REPO

SECRET = "cli-test-secret"
SWIFT_DEVICES = [
    "r1z1-10.0.0.1:6200/sda", "100", "r1z1-10.0.0.1:6200/sdb", "100",
    "r1z2-10.0.0.2:6200/sda", "100", "r1z2-10.0.0.2:6200/sdb_ssd", "100",
    "r2z1-10.0.1.1:6200/sda", "200", "z2-10.0.0.4:6200/sda", "50",
]


# What the ``ringstack`` console script runs. (``python -m cli.main`` would load
# the dispatcher twice, as ``__main__`` and ``cli.main``, and then miss our
# ``cli.main.CommandError``.)
ENTRY = "import sys; from cli.main import main; sys.exit(main())"


def ringstack(*args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", ENTRY, *map(str, args)]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)


def ok(*args: str | Path) -> str:
    proc = ringstack(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rebalanced builder: Swift-syntax drives plus a CSV and a JSON file."""
    d = tmp_path_factory.mktemp("built")
    b = d / "cluster.builder"
    ok("ring", b, "create", "8", "3", "1", "--container-part-power", "7")
    out = ok("ring", b, "add", *SWIFT_DEVICES)
    assert out.count("added drive") == 6
    (d / "more.csv").write_text("region,zone,ip,port,device,weight\n2,2,10.0.1.2,6200,sda,200\n2,2,10.0.1.2,6200,sdb,200\n")
    (d / "more.json").write_text(json.dumps({"drives": [
        {"region": 2, "zone": 3, "ip": "10.0.1.3", "port": 6200, "device": "sda", "weight": 150, "host": "node-x"}]}))
    ok("ring", b, "add", "--file", d / "more.csv")
    ok("ring", b, "add", "--file", d / "more.json")
    report = json.loads(ok("ring", b, "rebalance", "--json"))
    assert report["ring"] == "object"
    for name, r in report["rings"].items():
        parts = 128 if name == "container" else 256
        assert r["moved"] == 3 * parts and r["moved_fraction"] == 1.0
        assert r["devices"] == 9 and r["replicas"] == 3
    return b


@pytest.fixture
def builder(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cluster.builder"
    shutil.copy(built, copy)
    return copy


def test_show_json(builder: Path) -> None:
    show = json.loads(ok("ring", builder, "show", "--json"))
    assert (show["part_power"], show["replicas"], show["devices"]) == (8, 3, 9)
    assert 0 <= show["balance"] < 5 and show["dispersion"] == 0.0
    assert show["rings"]["container"]["part_power"] == 7
    drives = {(d["host"], d["device"]): d for d in show["drives"]}
    assert drives[("10.0.0.2:6200", "sdb")]["meta"] == "ssd"
    assert drives[("node-x", "sda")]["zone"] == 3
    assert drives[("10.0.0.4:6200", "sda")]["region"] == 1  # region defaults to 1
    assert sum(d["partitions"]["object"] for d in show["drives"]) == 3 * 256
    table = ok("ring", builder, "show")
    assert "node-x" in table and "object" in table


def test_dispersion_and_validate(builder: Path) -> None:
    disp = json.loads(ok("ring", builder, "dispersion", "--ring", "object", "--json"))
    assert disp["dispersion"] == 0.0 and disp["part_power"] == 8
    tiers = {t["tier"]: t for t in disp["tiers"]}
    assert tiers["region"]["domains"] == 2 and tiers["drive"]["max_replicas"] == 1
    assert "region" in ok("ring", builder, "dispersion")
    assert "ok" in ok("ring", builder, "validate")


def test_write_ring_and_lookup(builder: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "rings"
    ok("ring", builder, "write-ring", out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == ["account.ring", "container.ring", "object.ring"]
    assert read_ring(out_dir / "container.ring").part_power == 7
    ring = Ring(out_dir / "object.ring", SECRET)
    part, primaries = ring.get_nodes("AUTH_t", "c", "o/x")
    assert part == get_partition(SECRET, 8, "AUTH_t", "c", "o/x")
    for source in (builder, out_dir / "object.ring"):
        got = json.loads(ok("ring", source, "lookup", "AUTH_t/c/o/x", "--secret", SECRET, "--handoffs", "4", "--json"))
        assert got["partition"] == part
        assert [d["id"] for d in got["primaries"]] == [d.id for d in primaries]
        assert [d["id"] for d in got["handoffs"]] == [d.id for d in ring.get_more_nodes(part)][:4]
    acct = json.loads(ok("ring", builder, "lookup", "AUTH_t", "--secret", SECRET, "--json"))
    assert acct["ring"] == "account" and acct["partition"] == get_partition(SECRET, 8, "AUTH_t")
    cont = json.loads(ok("ring", builder, "lookup", "/AUTH_t/c", "--secret", SECRET, "--json"))
    assert cont["ring"] == "container" and cont["partition"] == get_partition(SECRET, 7, "AUTH_t", "c")
    assert "primary 0" in ok("ring", builder, "lookup", "AUTH_t/c/o", "--secret", SECRET)
    config = tmp_path / "cluster.toml"
    config.write_text(f'[cluster]\nhash_secret = "{SECRET}"\n')
    got = json.loads(ok("ring", out_dir / "object.ring", "lookup", "AUTH_t/c/o/x", "--config", config, "--json"))
    assert got["partition"] == part


def test_set_weight_remove_rebalance(builder: Path) -> None:
    out = ok("ring", builder, "set-weight", "r1z1-10.0.0.1:6200/sda", "0", "d1", "50")
    assert "100 -> 0" in out and "100 -> 50" in out
    ok("ring", builder, "remove", "node-x/sda")
    report = json.loads(ok("ring", builder, "rebalance", "--ring", "object", "--json"))
    assert 0 < report["moved"] < 3 * 256 and set(report["rings"]) == {"object"}
    show = json.loads(ok("ring", builder, "show", "--json"))
    assert show["devices"] == 8
    assert all(d["id"] != 8 for d in show["drives"])


def _corrupt(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[-40] ^= 0x01
    path.write_bytes(bytes(blob))


BAD = [
    (["remove", "d99"], "no drive matches"),
    (["set-weight", "d99", "10"], "no drive matches"),
    (["set-weight", "d0", "heavy"], "weight"),
    (["add", "r1z1-10.0.0.9/sdz", "100"], "bad device"),
    (["add", "r1z1-10.0.0.9:6200/sdz"], "no weight"),
    (["add", "r1z1-10.0.0.9:6200/sdz", "100", "bogus", "5"], "bad device"),  # all or nothing
    (["add", "r1z1-10.0.0.1:6200/sda", "100"], "already exists"),
    (["remove", "10.0.0.1"], "--yes"),
    (["create", "40", "3", "1"], "out of range"),
    (["create", "8", "3", "1"], "already exists"),
    (["rebalance", "--ring", "objects"], "no ring named"),
    (["lookup", "a//o"], "bad name"),
]


@pytest.mark.parametrize("args, words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_leaves_builder_untouched(builder: Path, args: list[str], words: str) -> None:
    before = builder.read_bytes()
    proc = ringstack("ring", builder, *args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert builder.read_bytes() == before


@pytest.mark.parametrize("power", ["33", "-1", "x"])
def test_create_bad_part_power_writes_nothing(tmp_path: Path, power: str) -> None:
    target = tmp_path / "new.builder"
    proc = ringstack("ring", target, "create", power, "3", "1")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "part power" in proc.stderr
    assert not target.exists()


def test_missing_and_corrupt_files(builder: Path, tmp_path: Path) -> None:
    proc = ringstack("ring", tmp_path / "absent.builder", "show")
    assert proc.returncode == 1 and "does not exist" in proc.stderr and len(proc.stderr.splitlines()) == 1
    ok("ring", builder, "write-ring", tmp_path / "rings")
    ring_file = tmp_path / "rings" / "object.ring"
    _corrupt(ring_file)
    proc = ringstack("ring", ring_file, "lookup", "a/c/o")
    assert proc.returncode == 1 and "checksum" in proc.stderr and len(proc.stderr.splitlines()) == 1
    _corrupt(builder)
    before = builder.read_bytes()
    proc = ringstack("ring", builder, "add", "r1z1-10.0.0.9:6200/sdz", "1")
    assert proc.returncode == 1 and "checksum" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert builder.read_bytes() == before
