"""Swift device syntax, drive files and search values for ``ringstack ring``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from ring._cli_devices import (
    DeviceSpec,
    DeviceSyntaxError,
    parse_device,
    parse_device_args,
    parse_drive_file,
    parse_search,
)


def test_swift_syntax_forms() -> None:
    assert parse_device("r1z2-10.0.0.3:6200/sdb", "100") == DeviceSpec(1, 2, "10.0.0.3", 6200, "sdb", 100.0, "10.0.0.3:6200")
    d = parse_device("z3-10.0.0.4:6201R10.1.0.4:6301/sdc_fast ssd", "5.5")
    assert (d.region, d.zone, d.port, d.device, d.meta, d.weight) == (1, 3, 6201, "sdc", "fast ssd", 5.5)
    v6 = parse_device("r2z1-[fd00::1]:6200/sda", "1")
    assert v6.address == "fd00::1" and v6.host == "[fd00::1]:6200"
    assert parse_device("r1z1-node7.example:6200/sda", "1", host="node7").host == "node7"


def test_several_devices_in_one_call() -> None:
    specs = parse_device_args(["r1z1-10.0.0.1:6200/sda", "1", "r1z2-10.0.0.2:6200/sda", "2"])
    assert [s.zone for s in specs] == [1, 2]


@pytest.mark.parametrize(
    "args, words",
    [
        (["r1z1-10.0.0.1/sda", "1"], "bad device"),  # no port
        (["r1-10.0.0.1:6200/sda", "1"], "bad device"),  # no zone
        (["r1z1-10.0.0.1:6200/sda"], "no weight"),
        (["r1z1-10.0.0.1:70000/sda", "1"], "out of range"),
        (["r1z1-10.0.0.1:6200/sda", "-1"], "weight"),
        (["r1z1-10.0.0.1:6200/sda", "nan"], "weight"),
        ([], "pairs"),
    ],
)
def test_bad_device_args(args: list[str], words: str) -> None:
    with pytest.raises(DeviceSyntaxError) as exc:
        parse_device_args(args)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_drive_files() -> None:
    csv_text = "region,zone,ip,port,device,weight,host\n1,1,10.0.0.1,6200,sda,100,\n2,3,10.0.0.2,6200,sdb,50,n2\n"
    specs = parse_drive_file("drives.csv", csv_text)
    assert [(s.region, s.zone, s.host, s.weight) for s in specs] == [(1, 1, "10.0.0.1:6200", 100.0), (2, 3, "n2", 50.0)]
    js = json.dumps([{"zone": 1, "address": "10.0.0.9", "port": 6200, "device": "sdx", "weight": 7}])
    assert parse_drive_file("d.json", js)[0].region == 1
    assert parse_drive_file("d.json", json.dumps({"drives": json.loads(js)}))[0].device == "sdx"
    for name, text, words in [
        ("d.csv", "zone,ip\n1,10.0.0.1\n", "header"),
        ("d.csv", "region,zone,ip,port,device,weight\n1,1,10.0.0.1,6200,sda,\n", "line 2: missing weight"),
        ("d.json", "{not json", "not valid JSON"),
        ("d.json", "[]", "no drives"),
        ("d.json", '[{"zone": "x", "ip": "a", "port": 1, "device": "d", "weight": 1}]', "integers"),
    ]:
        with pytest.raises(DeviceSyntaxError, match=words):
            parse_drive_file(name, text)


def _host(name: str, region: int, zone: int, address: str, port: int) -> SimpleNamespace:
    return SimpleNamespace(name=name, region=region, zone=zone, address=address, port=port)


def test_search_values() -> None:
    h1 = _host("10.0.0.1:6200", 1, 2, "10.0.0.1", 6200)
    h2 = _host("node-b", 1, 3, "10.0.0.2", 6201)
    drives = [(0, h1, "sda"), (1, h1, "sdb"), (2, h2, "sda")]

    def hits(text: str) -> list[int]:
        s = parse_search(text, {"10.0.0.1:6200", "node-b"})
        return [i for i, h, dev in drives if s.matches(i, h, dev)]

    assert hits("d1") == [1] and hits("2") == [2]
    assert hits("r1z2-10.0.0.1:6200/sda") == [0]
    assert hits("10.0.0.1") == [0, 1]  # ip without the dash, as Swift allows
    assert hits("z3") == [2]
    assert hits("node-b/sda") == [2]
    assert hits("-10.0.0.2:6201") == [2]
    assert hits("r2") == []
    for bad in ("", "/", ":6200", "d1x"):
        with pytest.raises(DeviceSyntaxError):
            parse_search(bad)
