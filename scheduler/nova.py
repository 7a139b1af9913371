"""The Nova-like scheduler (shell): hosts, instances, server groups, heartbeats.

Decisions come from ``_nova_core`` (pure); this shell reads provider arrays
(the same cached snapshot ``GET /allocation_candidates`` uses), claims
through ``PlacementStore.claim`` and keeps the scheduler's own records
(hosts, instances, groups) in ``<store dir>/scheduler.json``, written
atomically after every change.

Contracts:

- A claim is one store transaction for all instances of a request: all are
  placed or none (invariant 7: capacity checked inside the transaction). A
  conflict (someone else took the capacity first) is retried with fresh
  state, up to ``RETRIES`` times, then reported as 409.
- A move (evacuation, host down) replaces the instance's allocations in one
  consumer write: the instance is on its old host or its new one, never both
  and never neither, so every instance moves exactly once.
- Heartbeats: a host that has sent one is watched from then on: it is down
  when its last heartbeat is older than ``heartbeat_interval`` by the
  injected ``clock``; ``reconcile`` marks it down and reschedules its
  instances. A heartbeat brings it back up (its instances stay where they
  went). Hosts that never sent one are not watched (a cluster without
  heartbeat senders keeps working); after a restart, watching resumes with
  each host's next heartbeat.
- Evacuation disables the host (no new instances) and moves everything off.
"""

from __future__ import annotations

import json
import os
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

from ._nova_core import (
    GroupState,
    HostSpec,
    NoValidHost,
    PlaceRequest,
    down_hosts,
    host_provider_uuid,
    place,
)
from ._nova_hosts import hosts_from_builder, sync_hosts
from ._nova_place import candidates_for, locality_of
from ._store_records import ConsumerWrite, PlacementError

RETRIES = 5


@dataclass(slots=True)
class Instance:
    uuid: str
    name: str
    host: str
    resources: dict[str, int]
    traits: list[str] = field(default_factory=list)
    group: str | None = None
    availability_zone: str | None = None
    project_id: str = ""
    user_id: str = ""


@dataclass(slots=True)
class HostState:
    spec: HostSpec
    enabled: bool = True
    down: bool = False


class NovaScheduler:
    def __init__(self, store: Any, *, clock: Callable[[], float] | None = None,
                 heartbeat_interval: float = 30.0, state_path: str | None = None) -> None:
        self.store = store
        self.clock = clock or trio.current_time
        self.heartbeat_interval = heartbeat_interval
        self.state_path = state_path
        self.hosts: dict[str, HostState] = {}
        self.instances: dict[str, Instance] = {}
        self.groups: dict[str, GroupState] = {}
        self.last_seen: dict[str, float] = {}
        self.builder_path: str | None = None
        self.builder_mtime: float | None = None
        self.ring_path: str | None = None
        self.hash_secret: str | None = None
        self.events: list[dict[str, Any]] = []
        self.lock = trio.Lock()
        self._load()

    # -- persistence ---------------------------------------------------------------
    def _load(self) -> None:
        if not self.state_path or not os.path.exists(self.state_path):
            return
        with open(self.state_path) as f:
            data = json.load(f)
        self.hosts = {h["spec"]["name"]: HostState(HostSpec(**h["spec"]), h["enabled"], h["down"])
                      for h in data.get("hosts", [])}
        self.instances = {i["uuid"]: Instance(**i) for i in data.get("instances", [])}
        self.groups = {g["name"]: GroupState(g["name"], g["policy"], dict(g["members"]))
                       for g in data.get("groups", [])}
        self.builder_path = data.get("builder")
        self.ring_path = data.get("ring")
        self.hash_secret = data.get("hash_secret")

    def _save(self) -> None:
        if not self.state_path:
            return
        data = {"hosts": [{"spec": asdict(h.spec), "enabled": h.enabled, "down": h.down}
                          for h in self.hosts.values()],
                "instances": [asdict(i) for i in self.instances.values()],
                "groups": [{"name": g.name, "policy": g.policy, "members": g.members}
                           for g in self.groups.values()],
                "builder": self.builder_path, "ring": self.ring_path,
                "hash_secret": self.hash_secret}
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    # -- hosts ---------------------------------------------------------------------
    async def sync(self, specs: list[HostSpec]) -> dict[str, Any]:
        """Make the providers match ``specs`` (the inventory's hosts)."""
        async with self.lock:
            managed = list(self.hosts)
            report = await self.store.write(lambda tx: sync_hosts(tx, specs, managed))
            wanted = {s.name: s for s in specs}
            for name, spec in wanted.items():
                if name not in self.hosts:
                    self.hosts[name] = HostState(spec)
                else:
                    self.hosts[name].spec = spec
            for name in report["removed"]:
                self.hosts.pop(name, None)
                self.last_seen.pop(name, None)
            self._save()
        moved: list[dict[str, Any]] = []
        for name in report["kept"]:  # left the inventory with instances: move them off
            self.hosts[name].enabled = False
            moved += (await self.evacuate(name))["moved"]
        report["moved"] = moved
        return report

    async def sync_builder(self, path: str, ring: str | None = None,
                           hash_secret: str | None = None) -> dict[str, Any]:
        specs = await trio.to_thread.run_sync(hosts_from_builder, path)
        self.builder_path, self.builder_mtime = path, os.stat(path).st_mtime
        if ring is not None:
            self.ring_path, self.hash_secret = ring, hash_secret
        return await self.sync(specs)

    async def refresh_inventory(self) -> None:
        """Re-sync when the builder file changed since the last sync."""
        if not self.builder_path:
            return
        try:
            mtime = os.stat(self.builder_path).st_mtime
        except OSError:
            return
        if mtime != self.builder_mtime:
            await self.sync_builder(self.builder_path)

    def heartbeat(self, name: str) -> dict[str, Any]:
        if name not in self.hosts:
            raise PlacementError(404, f"No host named {name}.")
        self.last_seen[name] = self.clock()
        h = self.hosts[name]
        was_down, h.down = h.down, False
        if was_down:
            self._save()
        return {"host": name, "state": _state(h), "was_down": was_down}

    async def reconcile(self) -> dict[str, Any]:
        """Mark hosts without a recent heartbeat down and move their instances."""
        now = self.clock()
        seen = {n: t for n, t in self.last_seen.items()
                if n in self.hosts and not self.hosts[n].down}
        report: dict[str, Any] = {"down": down_hosts(seen, now, self.heartbeat_interval),
                                  "moved": [], "failed": []}
        for name in report["down"]:
            self.hosts[name].down = True
        if report["down"]:
            self._save()
        for name in report["down"]:
            r = await self._move_all(name)
            report["moved"] += r["moved"]
            report["failed"] += r["failed"]
        if report["down"]:
            self.events.append({"event": "host_down", "time": now, **report})
        return report

    async def evacuate(self, name: str) -> dict[str, Any]:
        if name not in self.hosts:
            raise PlacementError(404, f"No host named {name}.")
        self.hosts[name].enabled = False
        self._save()
        report = {"host": name, **(await self._move_all(name))}
        self.events.append({"event": "evacuate", "time": self.clock(), **report})
        return report

    def enable(self, name: str) -> None:
        if name not in self.hosts:
            raise PlacementError(404, f"No host named {name}.")
        self.hosts[name].enabled = True
        self._save()

    def usable(self) -> dict[str, HostState]:
        return {n: h for n, h in self.hosts.items() if h.enabled and not h.down}

    # -- instances -----------------------------------------------------------------
    async def schedule(self, *, name: str, count: int, resources: dict[str, int],
                       traits: list[str], availability_zone: str | None,
                       group: tuple[str, str] | None, locality: list[str],
                       project_id: str, user_id: str) -> list[Instance]:
        async with self.lock:
            g = None
            if group is not None:
                g = self.groups.get(group[0]) or GroupState(group[0], group[1])
                if g.policy != group[1]:
                    raise PlacementError(400, f"Server group {g.name} has policy {g.policy}, "
                                         f"not {group[1]}.")
            uuids = [str(uuidlib.uuid4()) for _ in range(count)]
            replica_hosts, replica_zones = await locality_of(self, locality)
            req = PlaceRequest(uuids, resources, g, replica_hosts, replica_zones)
            chosen = await self._claim(req, traits, availability_zone, project_id, user_id)
            made = []
            for k, pl in enumerate(chosen):
                inst = Instance(pl.instance, name if count == 1 else f"{name}-{k + 1}", pl.host,
                                dict(resources), list(traits), g.name if g else None,
                                availability_zone, project_id, user_id)
                self.instances[inst.uuid] = inst
                if g is not None:
                    g.members[inst.uuid] = pl.host
                made.append(inst)
            if g is not None:
                self.groups[g.name] = g
            self._save()
            return made

    async def _claim(self, req: PlaceRequest, traits: list[str], az: str | None,
                     project_id: str, user_id: str, *, exclude: str | None = None,
                     replace: bool = False) -> list[Any]:
        for attempt in range(RETRIES):
            cands = await candidates_for(self, req.resources, traits, az, exclude)
            try:
                chosen = place(req, cands)
            except NoValidHost as exc:
                raise PlacementError(409, str(exc)) from None
            writes = [ConsumerWrite(pl.instance, {host_provider_uuid(pl.host): dict(req.resources)},
                                    project_id or None, user_id or None,
                                    check_generation=not replace) for pl in chosen]
            try:
                await self.store.claim(writes)
                return chosen
            except PlacementError as exc:
                if exc.status != 409 or attempt == RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def delete_instance(self, uuid: str) -> Instance:
        async with self.lock:
            inst = self.instances.get(uuid)
            if inst is None:
                raise PlacementError(404, f"No instance {uuid}.")
            await self.store.claim([ConsumerWrite(uuid, {})])
            del self.instances[uuid]
            if inst.group and inst.group in self.groups:
                self.groups[inst.group].members.pop(uuid, None)
            self._save()
            return inst

    async def _move_all(self, name: str) -> dict[str, Any]:
        """Move every instance off host ``name``: one consumer write per instance,
        all members of a hard-affinity group on the host in one claim (they
        must land together)."""
        moved: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        async with self.lock:
            batches: dict[Any, list[Instance]] = {}
            for inst in sorted((i for i in self.instances.values() if i.host == name),
                               key=lambda i: i.name):
                g = self.groups.get(inst.group) if inst.group else None
                key: Any = inst.uuid
                if g is not None and g.policy == "affinity":
                    key = (g.name, tuple(sorted(inst.resources.items())), tuple(inst.traits),
                           inst.availability_zone)
                batches.setdefault(key, []).append(inst)
            for batch in batches.values():
                first = batch[0]
                g = self.groups.get(first.group) if first.group else None
                view = None
                if g is not None:
                    moving = {i.uuid for i in batch}
                    view = GroupState(g.name, g.policy,
                                      {k: v for k, v in g.members.items() if k not in moving})
                req = PlaceRequest([i.uuid for i in batch], first.resources, view)
                try:
                    chosen = await self._claim(req, first.traits, first.availability_zone,
                                               first.project_id, first.user_id, exclude=name,
                                               replace=True)
                except PlacementError as exc:
                    failed += [{"instance": i.uuid, "name": i.name, "from": name,
                                "reason": exc.detail} for i in batch]
                    continue
                for inst, pl in zip(batch, chosen, strict=True):
                    inst.host = pl.host
                    if g is not None:
                        g.members[inst.uuid] = inst.host
                    moved.append({"instance": inst.uuid, "name": inst.name, "from": name,
                                  "to": inst.host})
            self._save()
        return {"moved": moved, "failed": failed}

    def host_report(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        for i in self.instances.values():
            counts[i.host] = counts.get(i.host, 0) + 1
        return [{"name": n, "provider": host_provider_uuid(n), "region": h.spec.region,
                 "zone": h.spec.zone, "state": _state(h), "instances": counts.get(n, 0),
                 "vcpus": h.spec.vcpus, "memory_mb": h.spec.memory_mb, "disk_gb": h.spec.disk_gb}
                for n, h in sorted(self.hosts.items())]


def _state(h: HostState) -> str:
    return "down" if h.down else ("disabled" if not h.enabled else "up")


def default_state_path(store: Any) -> str | None:
    path = getattr(store, "path", None)
    return os.path.join(path, "scheduler.json") if path else None


def now_wall() -> float:
    return time.time()
