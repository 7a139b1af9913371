"""CLI: ``ringstack placement ...``, ``ringstack schedule ...``, ``ringstack evacuate HOST``.

Every command talks HTTP to a running placement service (``--url``, default
``$RINGSTACK_PLACEMENT_URL`` or http://127.0.0.1:8778) with a noauth2 token
(``--token``, default ``admin``) and prints rich tables (``--json`` for the
raw answer). Errors from the service are shown as one line (exit 1).

    ringstack placement providers list|show UUID|create NAME [--uuid U] [--parent P]|delete UUID
    ringstack placement inventories show UUID | set UUID VCPU=8 MEMORY_MB=4096[:reserved]
    ringstack placement allocations show CONSUMER
    ringstack placement candidates --resources VCPU:1,MEMORY_MB:512 [--required T] [--member-of A] [--limit N]
    ringstack schedule create NAME --resources VCPU:1,MEMORY_MB:512 [--count N] [--trait T]
                       [--az r1z2] [--group G --policy anti-affinity] [--locality a/c/o]
    ringstack schedule list | hosts | delete UUID | heartbeat HOST | reconcile
    ringstack schedule sync --builder FILE [--ring FILE] [--hash-secret S]
    ringstack evacuate HOST
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from rich.console import Console
from rich.table import Table


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("RINGSTACK_PLACEMENT_URL",
                                                   "http://127.0.0.1:8778"))
    p.add_argument("--token", default=os.environ.get("RINGSTACK_PLACEMENT_TOKEN", "admin"))
    p.add_argument("--os-placement-api-version", dest="version", default="latest")
    p.add_argument("--json", action="store_true", help="print the raw JSON answer")


def call(args: argparse.Namespace, method: str, path: str, body: Any = None,
         query: dict[str, Any] | None = None) -> Any:
    """One HTTP request; raises ``CommandError`` with the service's detail."""
    from cli.main import CommandError

    url = args.url.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None},
                                            doseq=True)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        "x-auth-token": args.token, "openstack-api-version": f"placement {args.version}",
        "content-type": "application/json", "accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            detail = json.loads(raw)["errors"][0]["detail"].strip().split("\n\n")[-1].strip()
        except (ValueError, KeyError, IndexError):
            detail = raw.decode(errors="replace")[:300]
        raise CommandError(f"{method} {path}: {exc.code} {detail}") from None
    except urllib.error.URLError as exc:
        raise CommandError(f"cannot reach placement at {args.url}: {exc.reason}") from None
    return json.loads(raw) if raw else None


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    Console().print(t)


def _out(args: argparse.Namespace, data: Any, render: Any) -> int:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        render(data)
    return 0


# -- placement ----------------------------------------------------------------------
def _providers(args: argparse.Namespace) -> int:
    if args.action == "list":
        data = call(args, "GET", "/resource_providers", query={"name": args.name})
        return _out(args, data, lambda d: _table("resource providers",
                    ["uuid", "name", "generation", "parent", "root"],
                    [[p["uuid"], p["name"], p["generation"], p.get("parent_provider_uuid"),
                      p.get("root_provider_uuid")] for p in d["resource_providers"]]))
    if args.action == "create":
        body = {"name": args.target, "uuid": args.uuid, "parent_provider_uuid": args.parent}
        data = call(args, "POST", "/resource_providers",
                    {k: v for k, v in body.items() if v is not None})
        return _out(args, data, lambda d: print(f"created {d['uuid']} ({d['name']})"))
    if args.action == "delete":
        call(args, "DELETE", f"/resource_providers/{args.target}")
        print(f"deleted {args.target}")
        return 0
    p = call(args, "GET", f"/resource_providers/{args.target}")
    inv = call(args, "GET", f"/resource_providers/{args.target}/inventories")
    use = call(args, "GET", f"/resource_providers/{args.target}/usages")

    def render(_: Any) -> None:
        _table(f"provider {p['name']} ({p['uuid']})", ["field", "value"],
               [[k, v] for k, v in p.items() if k != "links"])
        _inventory_table(inv, use)
    return _out(args, {"provider": p, "inventories": inv, "usages": use}, render)


def _inventory_table(inv: dict[str, Any], use: dict[str, Any] | None) -> None:
    used = (use or {}).get("usages", {})
    _table("inventories", ["class", "total", "reserved", "ratio", "min", "max", "step", "used"],
           [[rc, i["total"], i["reserved"], i["allocation_ratio"], i["min_unit"], i["max_unit"],
             i["step_size"], used.get(rc, 0)] for rc, i in inv["inventories"].items()])


def _inventories(args: argparse.Namespace) -> int:
    from cli.main import CommandError

    inv = call(args, "GET", f"/resource_providers/{args.uuid}/inventories")
    if args.action == "set":
        new = dict(inv["inventories"])
        for item in args.items:
            rc, _, spec = item.partition("=")
            total, _, reserved = spec.partition(":")
            if not rc or not total.isdigit():
                raise CommandError(f"bad inventory {item!r}: use CLASS=TOTAL[:RESERVED]")
            new[rc] = {**new.get(rc, {}), "total": int(total),
                       "reserved": int(reserved or new.get(rc, {}).get("reserved", 0))}
        inv = call(args, "PUT", f"/resource_providers/{args.uuid}/inventories",
                   {"resource_provider_generation": inv["resource_provider_generation"],
                    "inventories": new})
    use = call(args, "GET", f"/resource_providers/{args.uuid}/usages")
    return _out(args, inv, lambda d: _inventory_table(d, use))


def _allocations(args: argparse.Namespace) -> int:
    data = call(args, "GET", f"/allocations/{args.consumer}")
    return _out(args, data, lambda d: _table(f"allocations of {args.consumer}",
                ["provider", "class", "amount"],
                [[rp, rc, n] for rp, a in d["allocations"].items()
                 for rc, n in a["resources"].items()]))


def _candidates(args: argparse.Namespace) -> int:
    query = {"resources": args.resources, "required": args.required,
             "member_of": args.member_of, "limit": args.limit}
    data = call(args, "GET", "/allocation_candidates", query=query)

    def render(d: dict[str, Any]) -> None:
        rows = []
        for k, ar in enumerate(d["allocation_requests"]):
            allocs = ar["allocations"]
            items = allocs.items() if isinstance(allocs, dict) else \
                [(a["resource_provider"]["uuid"], a) for a in allocs]
            for rp, a in items:
                summary = d["provider_summaries"].get(rp, {})
                free = ", ".join(f"{rc} {r['capacity'] - r['used']}/{r['capacity']}"
                                 for rc, r in summary.get("resources", {}).items())
                rows.append([k + 1, rp, ", ".join(f"{rc}:{n}" for rc, n in a["resources"].items()),
                             free])
        _table(f"{len(d['allocation_requests'])} allocation candidates",
               ["#", "provider", "request", "free/capacity"], rows)
    return _out(args, data, render)


# -- scheduler ----------------------------------------------------------------------
def _instances_table(title: str, insts: list[dict[str, Any]]) -> None:
    _table(title, ["uuid", "name", "host", "resources", "group"],
           [[i["uuid"], i["name"], i["host"],
             ", ".join(f"{rc}:{n}" for rc, n in i["resources"].items()), i.get("group")]
            for i in insts])


def _moves_table(title: str, d: dict[str, Any]) -> None:
    _table(title, ["instance", "name", "from", "to"],
           [[m["instance"], m["name"], m["from"], m["to"]] for m in d.get("moved", [])]
           + [[f["instance"], f["name"], f["from"], f"FAILED: {f['reason']}"]
              for f in d.get("failed", [])])


def _schedule(args: argparse.Namespace) -> int:
    a = args.action
    if a == "create":
        resources = {}
        for item in args.resources.split(","):
            rc, _, n = item.partition(":")
            resources[rc.strip()] = int(n)
        body: dict[str, Any] = {"name": args.name, "count": args.count, "resources": resources,
                                "traits": args.trait or [], "locality": args.locality or []}
        if args.az:
            body["availability_zone"] = args.az
        if args.group:
            body["server_group"] = {"name": args.group, "policy": args.policy}
        data = call(args, "POST", "/scheduler/instances", body)
        return _out(args, data, lambda d: _instances_table(
            f"scheduled {len(d['instances'])} instance(s)", d["instances"]))
    if a == "list":
        data = call(args, "GET", "/scheduler/instances")
        return _out(args, data, lambda d: _instances_table("instances", d["instances"]))
    if a == "hosts":
        data = call(args, "GET", "/scheduler/hosts")
        return _out(args, data, lambda d: _table("hosts", ["name", "region", "zone", "state",
                    "instances", "vcpus", "memory_mb", "disk_gb"],
                    [[h["name"], h["region"], h["zone"], h["state"], h["instances"], h["vcpus"],
                      h["memory_mb"], h["disk_gb"]] for h in d["hosts"]]))
    if a == "delete":
        call(args, "DELETE", f"/scheduler/instances/{args.name}")
        print(f"deleted {args.name}")
        return 0
    if a == "heartbeat":
        data = call(args, "POST", f"/scheduler/hosts/{args.name}/heartbeat")
        return _out(args, data, lambda d: print(f"{d['host']}: {d['state']}"))
    if a == "reconcile":
        data = call(args, "POST", "/scheduler/reconcile")
        return _out(args, data, lambda d: _moves_table(
            f"down: {', '.join(d['down']) or 'none'}", d))
    body = {"builder": args.builder}
    if args.ring:
        body.update(ring=args.ring, hash_secret=args.hash_secret)
    data = call(args, "POST", "/scheduler/hosts", {k: v for k, v in body.items() if v})
    return _out(args, data, lambda d: print(", ".join(
        f"{k}: {len(v)}" for k, v in d.items() if isinstance(v, list))))


def _evacuate(args: argparse.Namespace) -> int:
    data = call(args, "POST", f"/scheduler/hosts/{args.host}/evacuate")
    return _out(args, data, lambda d: _moves_table(
        f"evacuated {d['host']}: {len(d['moved'])} moved, {len(d['failed'])} failed", d))


def register(sub: Any) -> None:
    pl = sub.add_parser("placement", help="resource providers, inventories, allocations, "
                        "candidates (talks to the placement service)")
    psub = pl.add_subparsers(dest="what", metavar="WHAT", required=True)
    p = psub.add_parser("providers", help="list/show/create/delete resource providers")
    p.add_argument("action", choices=["list", "show", "create", "delete"])
    p.add_argument("target", nargs="?", help="uuid (show/delete) or name (create)")
    p.add_argument("--name")
    p.add_argument("--uuid")
    p.add_argument("--parent")
    _common(p)
    p.set_defaults(func=_providers)
    p = psub.add_parser("inventories", help="show or set a provider's inventories")
    p.add_argument("action", choices=["show", "set"])
    p.add_argument("uuid")
    p.add_argument("items", nargs="*", help="CLASS=TOTAL[:RESERVED]")
    _common(p)
    p.set_defaults(func=_inventories)
    p = psub.add_parser("allocations", help="show a consumer's allocations")
    p.add_argument("action", choices=["show"])
    p.add_argument("consumer")
    _common(p)
    p.set_defaults(func=_allocations)
    p = psub.add_parser("candidates", help="GET /allocation_candidates")
    p.add_argument("--resources", required=True)
    p.add_argument("--required")
    p.add_argument("--member-of")
    p.add_argument("--limit", type=int)
    _common(p)
    p.set_defaults(func=_candidates)

    s = sub.add_parser("schedule", help="schedule instances on the inventory's hosts")
    s.add_argument("action", choices=["create", "list", "hosts", "delete", "heartbeat",
                                      "reconcile", "sync"])
    s.add_argument("name", nargs="?", help="instance name (create), uuid (delete), host")
    s.add_argument("--resources", default="VCPU:1,MEMORY_MB:512,DISK_GB:1")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--trait", action="append")
    s.add_argument("--az", help="availability zone: r<region>z<zone> or z<zone>")
    s.add_argument("--group", help="server group name")
    s.add_argument("--policy", default="anti-affinity",
                   choices=["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"])
    s.add_argument("--locality", action="append", help="object path a/c/o (repeatable)")
    s.add_argument("--builder", help="cluster builder file (sync)")
    s.add_argument("--ring", help="object ring file for locality (sync)")
    s.add_argument("--hash-secret")
    _common(s)
    s.set_defaults(func=_schedule)

    e = sub.add_parser("evacuate", help="move every instance off a host")
    e.add_argument("host")
    _common(e)
    e.set_defaults(func=_evacuate)
