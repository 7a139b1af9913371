"""The placement store: resource providers, inventories, classes, traits,
aggregates, consumers and allocations in one LMDB environment.

Read API (stable; the candidates engineer builds numpy arrays from it):

- ``await store.snapshot() -> Snapshot``: every provider as a
  ``ProviderState(provider, inventories, usages, traits, aggregates)`` at one
  committed ``version``. Cached per version, so calling it per request is
  cheap when nothing changed; ``store.version()`` is the counter alone.
- ``await store.read(fn)``: run ``fn(tx: Tx)`` in a read transaction in a
  worker thread (``_store_txn.Tx`` has typed getters) and return its result.

Write API:

- ``await store.write(fn)``: run ``fn(tx)`` in a write transaction; the
  result is returned, a ``PlacementError`` raised by ``fn`` is re-raised and
  nothing ``fn`` wrote survives (nested transaction aborted).
- ``await store.claim(writes)``: replace the allocations of the consumers
  in ``writes`` (``ConsumerWrite`` records) atomically, with every capacity,
  constraint and generation check (invariant 7). This is how allocation
  candidates are claimed.
- ``store.write_sync(fn)`` / ``store.read_sync(fn)``: the same from a plain
  thread (tests, tools).

Group commit: concurrent ``write`` calls queue up; whoever holds the writer
lock runs every queued operation, each in its own nested transaction, then
commits (and fsyncs) once. Each operation still sees the effects of those
before it, so the result equals some serial order. Cancellation: a caller
cancelled while queued may still have its operation applied (like a
timeout: indeterminate); once the batch runs in its thread it is not
abandoned.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import lmdb
import trio

from ._store_allocations import replace_allocations
from ._store_records import ConsumerWrite, PlacementError, ProviderState, Snapshot
from ._store_txn import TABLES, Tx

T = TypeVar("T")

__all__ = ["PlacementStore", "open_store"]


@dataclass(slots=True)
class _Op:
    fn: Callable[[Tx], Any]
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class PlacementStore:
    """One LMDB environment; safe to share between trio tasks and threads."""

    def __init__(self, path: str, *, map_size: int = 1 << 34, durable: bool = True,
                 read_limiter: trio.CapacityLimiter | None = None) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.env = lmdb.open(path, map_size=map_size, max_dbs=len(TABLES) + 2,
                             sync=durable, metasync=durable, max_readers=256)
        self.dbs = {name: self.env.open_db(name.encode()) for name in TABLES}
        self._write_lock = trio.Lock()
        self._thread_lock = threading.Lock()
        self._queue: list[_Op] = []
        self._writer_limiter = trio.CapacityLimiter(1)
        self._read_limiter = read_limiter or trio.CapacityLimiter(4)
        self._snapshot: Snapshot | None = None

    def close(self) -> None:
        self.env.close()

    # -- sync core -----------------------------------------------------------------
    def read_sync(self, fn: Callable[[Tx], T]) -> T:
        with self.env.begin(write=False) as txn:
            return fn(Tx(txn, self.dbs))

    def _run_batch(self, batch: list[_Op]) -> None:
        with self._thread_lock:
            touched: set[str] = set()
            version = 0
            try:
                with self.env.begin(write=True) as parent:
                    for op in batch:
                        child = self.env.begin(write=True, parent=parent)
                        tx = Tx(child, self.dbs)
                        try:
                            op.result = op.fn(tx)
                        except BaseException as exc:  # noqa: BLE001 - handed to the caller
                            child.abort()
                            op.error = exc
                        else:
                            child.commit()
                            touched |= tx.touched
                    version = Tx(parent, self.dbs).bump_counter("version")
            except lmdb.Error as exc:  # the commit failed: nothing was applied
                for op in batch:
                    op.error, op.result = exc, None
                self._snapshot = None
            else:
                self._refresh_snapshot(version, touched)
            for op in batch:
                op.done = True

    def _refresh_snapshot(self, version: int, touched: set[str]) -> None:
        """Bring the cached snapshot to ``version`` by re-reading only the
        providers this batch touched (copy-on-write: readers holding the old
        snapshot keep a consistent value). Caller holds ``_thread_lock``."""
        old = self._snapshot
        if old is None or old.version != version - 1:
            self._snapshot = None
            return
        providers = dict(old.providers)
        with self.env.begin(write=False) as txn:
            tx = Tx(txn, self.dbs)
            # new providers go last, in creation order (as a full rebuild lists them)
            for uuid in sorted(touched, key=lambda u: (u not in providers,
                                                       (tx.get("providers", u) or {}).get("id", 0))):
                state = _state(tx, uuid)
                if state is None:
                    providers.pop(uuid, None)
                else:
                    providers[uuid] = state
        self._snapshot = Snapshot(version, providers)

    def write_sync(self, fn: Callable[[Tx], T]) -> T:
        op = _Op(fn)
        self._run_batch([op])
        if op.error is not None:
            raise op.error
        return op.result  # type: ignore[no-any-return]

    # -- async API -----------------------------------------------------------------
    async def read(self, fn: Callable[[Tx], T]) -> T:
        return await trio.to_thread.run_sync(self.read_sync, fn, limiter=self._read_limiter)

    async def write(self, fn: Callable[[Tx], T]) -> T:
        op = _Op(fn)
        self._queue.append(op)
        async with self._write_lock:
            if not op.done:
                batch, self._queue = self._queue, []
                await trio.to_thread.run_sync(self._run_batch, batch,
                                              limiter=self._writer_limiter)
        if op.error is not None:
            raise op.error
        return op.result  # type: ignore[no-any-return]

    async def claim(self, writes: Iterable[ConsumerWrite]) -> None:
        """Atomically replace the allocations of ``writes``' consumers."""
        items = list(writes)
        await self.write(lambda tx: replace_allocations(tx, items))

    def version_sync(self) -> int:
        return self.read_sync(lambda tx: tx.counter("version"))

    async def version(self) -> int:
        return await self.read(lambda tx: tx.counter("version"))

    def snapshot_sync(self) -> Snapshot:
        cached = self._snapshot
        if cached is not None and cached.version == self.version_sync():
            return cached
        with self._thread_lock:  # a batch in flight refreshes the cache first
            with self.env.begin(write=False) as txn:
                tx = Tx(txn, self.dbs)
                version = tx.counter("version")
                cached = self._snapshot
                if cached is not None and cached.version == version:
                    return cached
                snap = Snapshot(version, _collect(tx))
            self._snapshot = snap
            return snap

    async def snapshot(self) -> Snapshot:
        return await trio.to_thread.run_sync(self.snapshot_sync, limiter=self._read_limiter)


def _collect(tx: Tx) -> dict[str, ProviderState]:
    invs = {k: v for k, v in tx.items("inventories")}
    used = {k: v for k, v in tx.items("usages")}
    traits = {k: v for k, v in tx.items("ptraits")}
    aggs = {k: v for k, v in tx.items("aggregates")}
    out: dict[str, ProviderState] = {}
    from ._store_records import Inventory

    for p in tx.providers():
        out[p.uuid] = ProviderState(
            p,
            {rc: Inventory(rc, **f) for rc, f in invs.get(p.uuid, {}).items()},
            dict(used.get(p.uuid, {})),
            frozenset(traits.get(p.uuid, ())),
            frozenset(aggs.get(p.uuid, ())),
        )
    return out


def _state(tx: Tx, uuid: str) -> ProviderState | None:
    p = tx.provider(uuid)
    if p is None:
        return None
    return ProviderState(p, tx.inventories(uuid), tx.usages(uuid),
                         frozenset(tx.provider_traits(uuid)),
                         frozenset(tx.provider_aggregates(uuid)))


def open_store(path: str, **kwargs: Any) -> PlacementStore:
    """Open (creating if needed) the store under directory ``path``."""
    return PlacementStore(path, **kwargs)


__all__ += ["PlacementError", "ConsumerWrite", "Snapshot", "ProviderState"]
