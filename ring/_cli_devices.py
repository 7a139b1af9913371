"""Parsing for ``ringstack ring``: Swift's device syntax, drive files, searches.

Pure functions; every refusal is a ``DeviceSyntaxError`` with a one-line
message naming the offending input.

Device syntax (as swift-ring-builder): ``[r<region>]z<zone>-<ip>:<port>
[R<repl_ip>:<repl_port>]/<device>[_<meta>]`` followed by a weight, e.g.
``r1z2-10.0.0.3:6200/sdb 100``; region defaults to 1; an IPv6 address is
written in brackets. The replication address is accepted and ignored (one
network here). The host is named ``ip:port`` unless the caller names it.

Searches (``remove``, ``set-weight``): ``d<id>`` or a bare id; Swift's
``[r<region>][z<zone>]-<ip>[:<port>][/<device>]`` (every part optional but at
least one); or ``<host>/<device>``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from typing import Any


class DeviceSyntaxError(ValueError):
    """Bad device syntax, drive file or search value."""


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One drive to add, with the host it lives on."""

    region: int
    zone: int
    address: str
    port: int
    device: str
    weight: float
    host: str
    meta: str = ""


_ADDR = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)"
_DEVICE_RE = re.compile(
    rf"^(?:r(?P<region>\d+))?z(?P<zone>\d+)-(?P<ip>{_ADDR}):(?P<port>\d+)"
    rf"(?:R(?P<rip>{_ADDR}):(?P<rport>\d+))?/(?P<device>[^_/\s]+)(?:_(?P<meta>.*))?$"
)
_SEARCH_RE = re.compile(
    rf"^(?:r(?P<region>\d+))?(?:z(?P<zone>\d+))?(?:-(?P<ip>{_ADDR}))?(?::(?P<port>\d+))?(?:/(?P<device>[^/\s]+))?$"
)


def _weight(text: Any, where: str) -> float:
    try:
        w = float(text)
    except (TypeError, ValueError):
        raise DeviceSyntaxError(f"{where}: weight must be a number, not {text!r}") from None
    if not math.isfinite(w) or w < 0:
        raise DeviceSyntaxError(f"{where}: weight must be a finite number >= 0, not {text!r}")
    return w


def _port(text: Any, where: str) -> int:
    try:
        port = int(text)
    except (TypeError, ValueError):
        raise DeviceSyntaxError(f"{where}: port must be an integer, not {text!r}") from None
    if not 0 < port <= 65535:
        raise DeviceSyntaxError(f"{where}: port {port} out of range 1..65535")
    return port


def _strip_brackets(ip: str) -> str:
    return ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip


def host_name(address: str, port: int) -> str:
    """The implicit host name: ``ip:port`` (``[v6]:port`` for IPv6)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def parse_device(text: str, weight: str, host: str | None = None) -> DeviceSpec:
    """One ``r1z2-10.0.0.3:6200/sdb`` + weight pair."""
    m = _DEVICE_RE.match(text)
    if not m:
        raise DeviceSyntaxError(
            f"bad device {text!r}: expected [r<region>]z<zone>-<ip>:<port>/<device>[_<meta>], e.g. r1z2-10.0.0.3:6200/sdb"
        )
    address = _strip_brackets(m["ip"])
    port = _port(m["port"], text)
    return DeviceSpec(
        region=int(m["region"] or 1),
        zone=int(m["zone"]),
        address=address,
        port=port,
        device=m["device"],
        weight=_weight(weight, text),
        host=host or host_name(address, port),
        meta=m["meta"] or "",
    )


def parse_device_args(args: list[str], host: str | None = None) -> list[DeviceSpec]:
    """``DEV WEIGHT [DEV WEIGHT ...]`` as swift-ring-builder's ``add`` takes them."""
    if not args:
        raise DeviceSyntaxError("add needs DEVICE WEIGHT pairs or --file")
    if len(args) % 2:
        raise DeviceSyntaxError(f"add needs DEVICE WEIGHT pairs; {args[-1]!r} has no weight")
    return [parse_device(args[i], args[i + 1], host) for i in range(0, len(args), 2)]


def _record(row: dict[str, Any], where: str) -> DeviceSpec:
    row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    address = row.get("ip") or row.get("address")
    for key, value in (("zone", row.get("zone")), ("ip", address), ("port", row.get("port")),
                       ("device", row.get("device")), ("weight", row.get("weight"))):
        if value is None or str(value).strip() == "":
            raise DeviceSyntaxError(f"{where}: missing {key}")
    try:
        region = int(row.get("region") or 1)
        zone = int(row["zone"])
    except (TypeError, ValueError):
        raise DeviceSyntaxError(f"{where}: region and zone must be integers") from None
    if region < 0 or zone < 0:
        raise DeviceSyntaxError(f"{where}: region and zone must be >= 0")
    port = _port(row["port"], where)
    address = _strip_brackets(str(address).strip())
    device = str(row["device"]).strip()
    if "/" in device or not device:
        raise DeviceSyntaxError(f"{where}: bad device name {device!r}")
    host = str(row.get("host") or "").strip() or host_name(address, port)
    return DeviceSpec(region, zone, address, port, device, _weight(row["weight"], where), host,
                      str(row.get("meta") or ""))


def parse_drive_file(name: str, text: str) -> list[DeviceSpec]:
    """A CSV (header row) or JSON (list, or {"drives": [...]}) of drives.

    Columns/keys: region (default 1), zone, ip or address, port, device,
    weight, and optional host and meta.
    """
    stripped = text.lstrip()
    if name.lower().endswith(".json") or stripped.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DeviceSyntaxError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict):
            data = data.get("drives")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DeviceSyntaxError(f"{name}: expected a list of drive objects (or {{\"drives\": [...]}})")
        rows = [(f"{name}: drive {i + 1}", r) for i, r in enumerate(data)]
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "device" not in [f.strip().lower() for f in reader.fieldnames]:
            raise DeviceSyntaxError(f"{name}: CSV needs a header row with region,zone,ip,port,device,weight")
        rows = [(f"{name}: line {i + 2}", r) for i, r in enumerate(reader)]
    if not rows:
        raise DeviceSyntaxError(f"{name}: no drives")
    return [_record(r, where) for where, r in rows]


@dataclass(frozen=True, slots=True)
class Search:
    """Which drives a search value names; ``None`` fields match anything."""

    id: int | None = None
    region: int | None = None
    zone: int | None = None
    address: str | None = None
    port: int | None = None
    device: str | None = None
    host: str | None = None

    def matches(self, drive_id: int, host: Any, device: str) -> bool:
        """``host`` is an inventory Host (name, region, zone, address, port)."""
        return (
            (self.id is None or self.id == drive_id)
            and (self.region is None or self.region == host.region)
            and (self.zone is None or self.zone == host.zone)
            and (self.address is None or self.address == host.address)
            and (self.port is None or self.port == host.port)
            and (self.device is None or self.device == device)
            and (self.host is None or self.host == host.name)
        )


def parse_search(text: str, host_names: set[str] | frozenset[str] = frozenset()) -> Search:
    """See the module docstring for the accepted forms."""
    value = text.strip()
    if re.fullmatch(r"d?\d+", value):
        return Search(id=int(value.lstrip("d")))
    if "/" in value:
        head, _, dev = value.rpartition("/")
        if head in host_names:
            return Search(host=head, device=dev)
    if value[:1].isdigit() or value.startswith("["):
        value = "-" + value  # Swift allows the ip without its leading dash
    m = _SEARCH_RE.match(value)
    if not m or not any(m.groupdict().values()) or (m["port"] and not m["ip"]):
        raise DeviceSyntaxError(
            f"bad search value {text!r}: use d<id>, <host>/<device> or [r<region>][z<zone>]-<ip>[:<port>][/<device>]"
        )
    return Search(
        region=int(m["region"]) if m["region"] else None,
        zone=int(m["zone"]) if m["zone"] else None,
        address=_strip_brackets(m["ip"]) if m["ip"] else None,
        port=int(m["port"]) if m["port"] else None,
        device=m["device"],
    )
