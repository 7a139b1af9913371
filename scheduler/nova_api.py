"""HTTP routes of the scheduler, under ``/scheduler/`` on the placement service.

``placement_api`` delegates every ``/scheduler/...`` path here (after
authentication); admin or service role required. JSON in, JSON out, errors
as Placement error documents (``PlacementError``).

=======  ======================================  =====================================
method   path                                    what
=======  ======================================  =====================================
GET      /scheduler/hosts                        hosts, state (up/down/disabled), load
POST     /scheduler/hosts                        sync: ``{"hosts": [...]}`` or
                                                 ``{"builder": PATH, "ring": PATH,
                                                 "hash_secret": S}``
POST     /scheduler/hosts/{name}/heartbeat       a host is alive
POST     /scheduler/hosts/{name}/evacuate        move every instance off (reports moves)
POST     /scheduler/hosts/{name}/enable          accept instances again
POST     /scheduler/reconcile                    hosts past the heartbeat interval go
                                                 down, their instances move (reported)
GET      /scheduler/instances                    every instance
POST     /scheduler/instances                    schedule (201 with hosts and allocations)
GET      /scheduler/instances/{uuid}             one instance
DELETE   /scheduler/instances/{uuid}             free its allocations
GET      /scheduler/groups                       server groups and members
GET      /scheduler/events                       recent evacuations and host-down moves
=======  ======================================  =====================================

The heartbeat interval is ``RINGSTACK_HEARTBEAT_INTERVAL`` seconds (default
30); a watcher task reconciles every half interval.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict
from typing import Any

import trio

from ._api_common import Ctx, Reply
from ._nova_core import POLICIES, HostSpec, host_provider_uuid
from ._store_records import PlacementError
from .nova import NovaScheduler, default_state_path

_log = logging.getLogger("ringstack.scheduler")
_schedulers: dict[int, NovaScheduler] = {}

HOSTS_SCHEMA = {
    "type": "object",
    "properties": {
        "hosts": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1}, "region": {"type": "integer"},
                "zone": {"type": "integer"}, "address": {"type": "string"},
                "port": {"type": "integer"},
                "vcpus": {"type": ["integer", "null"], "minimum": 0},
                "memory_mb": {"type": ["integer", "null"], "minimum": 0},
                "disk_gb": {"type": ["integer", "null"], "minimum": 0}},
            "required": ["name", "region", "zone"], "additionalProperties": False}},
        "builder": {"type": "string"}, "ring": {"type": "string"},
        "hash_secret": {"type": "string"}},
    "additionalProperties": False,
}
INSTANCES_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "count": {"type": "integer", "minimum": 1, "maximum": 1000},
        "resources": {"type": "object", "minProperties": 1,
                      "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1}},
                      "additionalProperties": False},
        "traits": {"type": "array", "items": {"type": "string"}},
        "availability_zone": {"type": ["string", "null"]},
        "server_group": {"type": ["object", "null"], "properties": {
            "name": {"type": "string", "minLength": 1},
            "policy": {"type": "string", "enum": list(POLICIES)}},
            "required": ["name", "policy"], "additionalProperties": False},
        "locality": {"type": "array", "items": {"type": "string"}},
        "project_id": {"type": "string"}, "user_id": {"type": "string"},
    },
    "required": ["name", "resources"], "additionalProperties": False,
}


def scheduler_for(store: Any) -> NovaScheduler:
    sched = _schedulers.get(id(store))
    if sched is None:
        interval = float(os.environ.get("RINGSTACK_HEARTBEAT_INTERVAL", "30"))
        sched = NovaScheduler(store, heartbeat_interval=interval,
                              state_path=default_state_path(store))
        _schedulers[id(store)] = sched
        trio.lowlevel.spawn_system_task(_watch, sched)
    return sched


async def _watch(sched: NovaScheduler) -> None:
    """Reconcile every half interval; errors are logged, never fatal."""
    while True:
        await trio.sleep(max(0.05, sched.heartbeat_interval / 2))
        try:
            await sched.refresh_inventory()
            await sched.reconcile()
        except Exception:  # noqa: BLE001 - a watcher must outlive one bad round
            _log.exception("scheduler reconcile failed")


def _instance_json(i: Any) -> dict[str, Any]:
    d = asdict(i)
    d["provider"] = host_provider_uuid(i.host)
    d["allocations"] = {d["provider"]: {"resources": dict(i.resources)}}
    return d


_HOST = re.compile(r"^/scheduler/hosts/(?P<name>[^/]+)/(?P<action>heartbeat|evacuate|enable)/?$")
_INST = re.compile(r"^/scheduler/instances/(?P<uuid>[^/]+)/?$")


def _allow(ctx: Ctx, methods: str) -> PlacementError:
    err = PlacementError(405, f"The method specified is not allowed for this resource. "
                         f"Allowed: {methods}")
    err.headers = [("allow", methods)]  # type: ignore[attr-defined]
    return err


async def handle(app: Any, ctx: Ctx) -> Reply:
    app.enforce(ctx, "placement:allocations:update")
    sched = scheduler_for(app.store)
    path = ctx.path.rstrip("/") or "/"
    if path != "/scheduler/hosts" or ctx.method != "POST":
        await sched.refresh_inventory()  # the builder file changed: sync first (not under lock)
    if path == "/scheduler/hosts":
        if ctx.method == "GET":
            return Reply(200, {"hosts": sched.host_report()})
        if ctx.method != "POST":
            raise _allow(ctx, "GET, POST")
        body = ctx.json(HOSTS_SCHEMA)
        if "builder" in body:
            report = await sched.sync_builder(body["builder"], body.get("ring"),
                                              body.get("hash_secret"))
        elif "hosts" in body:
            if "ring" in body:
                sched.ring_path, sched.hash_secret = body["ring"], body.get("hash_secret")
            report = await sched.sync([HostSpec(**h) for h in body["hosts"]])
        else:
            raise PlacementError(400, "Give either 'hosts' or 'builder'.")
        return Reply(200, report)
    m = _HOST.match(path)
    if m:
        if ctx.method != "POST":
            raise _allow(ctx, "POST")
        name, action = m.group("name"), m.group("action")
        if action == "heartbeat":
            return Reply(200, sched.heartbeat(name))
        if action == "enable":
            sched.enable(name)
            return Reply(200, {"host": name, "state": "up"})
        return Reply(200, await sched.evacuate(name))
    if path == "/scheduler/reconcile":
        if ctx.method != "POST":
            raise _allow(ctx, "POST")
        return Reply(200, await sched.reconcile())
    if path == "/scheduler/instances":
        if ctx.method == "GET":
            return Reply(200, {"instances": [_instance_json(i)
                                             for i in sched.instances.values()]})
        if ctx.method != "POST":
            raise _allow(ctx, "GET, POST")
        return await _create(sched, ctx)
    m = _INST.match(path)
    if m:
        uuid = m.group("uuid")
        if ctx.method == "GET":
            inst = sched.instances.get(uuid)
            if inst is None:
                raise PlacementError(404, f"No instance {uuid}.")
            return Reply(200, _instance_json(inst))
        if ctx.method != "DELETE":
            raise _allow(ctx, "DELETE, GET")
        await sched.delete_instance(uuid)
        return Reply(204, None)
    if path == "/scheduler/groups" and ctx.method == "GET":
        return Reply(200, {"groups": [{"name": g.name, "policy": g.policy,
                                       "members": g.members} for g in sched.groups.values()]})
    if path == "/scheduler/events" and ctx.method == "GET":
        return Reply(200, {"events": sched.events[-100:]})
    raise PlacementError(404, "The resource could not be found.")


async def _create(sched: NovaScheduler, ctx: Ctx) -> Reply:
    body = ctx.json(INSTANCES_SCHEMA)
    group = body.get("server_group")
    made = await sched.schedule(
        name=body["name"], count=int(body.get("count", 1)), resources=dict(body["resources"]),
        traits=list(body.get("traits", [])), availability_zone=body.get("availability_zone"),
        group=(group["name"], group["policy"]) if group else None,
        locality=list(body.get("locality", [])),
        project_id=body.get("project_id") or (ctx.auth.project_id if ctx.auth else "") or "",
        user_id=body.get("user_id") or (ctx.auth.user_id if ctx.auth else "") or "")
    return Reply(201, {"instances": [_instance_json(i) for i in made]})
