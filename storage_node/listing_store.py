"""The async side of the listing databases: one ``ListingStore`` per drive.

Reads run in a worker thread under the drive's limiter in one read
transaction. Writes go through the drive's group committer (``index``): each
write function runs in its own *nested* transaction inside the batch, so a
request that fails (a 409, a bad row) rolls back only its own changes while
its neighbours in the batch still commit, with one LMDB fsync per batch
(DESIGN "LMDB writers batch"). On cancel: a queued write may still commit
(the outcome is indeterminate, as invariant 1 allows); a running one always
finishes.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from storage_node.drive import DriveUnavailable
from storage_node.index import GroupCommitter
from storage_node.listing_db import DbRef, DbState, ListingDbs
from storage_node.rows_core import DbInfo, Row

T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]  # run(fn, *args) in the drive's thread pool


class ListingStore:
    def __init__(self, dbs: ListingDbs, run: Runner, committer: GroupCommitter,
                 check: Callable[[], object] | None = None) -> None:
        self.dbs = dbs
        self._run = run
        self._committer = committer
        self._check = check  # raises DriveUnavailable (507) when the drive is gone

    @classmethod
    async def open(cls, env_factory: Callable[[], lmdb.Environment], run: Runner,
                   committer_factory: Callable[[], GroupCommitter],
                   check: Callable[[], object] | None = None) -> ListingStore:
        dbs = await run(_open_dbs, env_factory)
        return cls(dbs, run, committer_factory(), check)

    def _read_sync(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._check is not None:
            self._check()
        with self.dbs.env.begin() as txn:
            return fn(self.dbs, txn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(dbs, txn, *args)`` in a read transaction, in a thread."""
        result: T = await self._run(self._read_sync, fn, args)
        return result

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(dbs, txn, *args)`` in its own nested write transaction,
        group-committed with concurrent writers; raises what ``fn`` raised
        (and then nothing of it was written)."""
        box: dict[str, Any] = {}
        env = self.dbs.env

        def op(txn: lmdb.Transaction) -> None:
            try:
                if self._check is not None:
                    self._check()
                with env.begin(write=True, parent=txn) as child:
                    box["result"] = fn(self.dbs, child, *args)
            except Exception as exc:  # only this request's changes are rolled back
                box["error"] = exc

        try:
            await self._committer.commit([op])
        except (lmdb.MapFullError, lmdb.DiskError, lmdb.ReadonlyError) as exc:
            raise DriveUnavailable(f"listing database: {exc}") from exc  # 507, this drive only
        if "error" in box:
            raise box["error"]
        return box["result"]  # type: ignore[no-any-return]

    # -- the replication row-sync API (S1) -------------------------------------
    async def rows_since(self, state: DbState, point: int, limit: int = 1000) -> tuple[list[Row], int]:
        """Rows written after row id ``point`` and the point to ask from next."""
        return await self.read(lambda dbs, txn: dbs.rows_since(txn, state, point, limit))

    async def merge_rows(self, ref: DbRef, part: int, rows: list[Row],
                         info: DbInfo | None = None) -> tuple[int, DbState]:
        """Merge a peer's rows (and info) in one group-committed write."""
        return await self.write(ListingDbs.merge_rows, ref, part, rows, info)


_DBS: dict[Path, ListingDbs] = {}
_DBS_LOCK = threading.Lock()


def _open_dbs(env_factory: Callable[[], lmdb.Environment]) -> ListingDbs:
    env = env_factory()
    key = Path(env.path())
    with _DBS_LOCK:
        dbs = _DBS.get(key)
        if dbs is None or dbs.env is not env:
            dbs = _DBS[key] = ListingDbs(env)
        return dbs


# (id(ctx), drive) -> (ctx, store); holding ctx keeps its id from being reused
_STORES: dict[tuple[int, str], tuple[Any, ListingStore]] = {}


async def store_for(ctx: Any, drive: str) -> ListingStore:
    """The drive's store for a ``NodeContext`` (cached per context and drive).
    Raises ``DriveUnavailable`` (507) when the drive is missing."""
    ctx.root(drive)
    key = (id(ctx), drive)
    cached = _STORES.get(key)
    if cached is not None and cached[0] is ctx:
        return cached[1]

    async def run(fn: Callable[..., T], *args: Any) -> T:
        result: T = await ctx.run(drive, fn, *args)
        return result

    store = await ListingStore.open(lambda: ctx.env(drive), run, lambda: ctx.committer(drive),
                                    lambda: ctx.check_drive(drive))
    _STORES[key] = (ctx, store)
    return store
