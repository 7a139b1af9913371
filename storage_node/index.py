"""The per-drive LMDB index: object rows, cached suffix hashes, group commit.

One LMDB environment per drive at ``<drive>/index.lmdb`` (DESIGN "Disk"),
opened once per process (``open_env`` caches it) and shared by every server
on the node: the object side uses the sub-databases ``objects``,
``suffixes`` and ``async_pending``; the container and account servers open
their own (``NodeContext.env``). LMDB serialises writers across processes,
so ``--workers N`` processes share it safely.

- ``objects``: key ``<part:08x>/<suffix>/<hash>`` -> ``ObjectRecord`` JSON.
  The row is a cache of the hash directory's files (``integrity``); a row is
  only ever replaced by one that is not older (``row_supersedes``), so two
  racing commits of one object cannot leave the older state behind.
- ``suffixes``: key ``<part:08x>/<suffix>`` -> the suffix hash (hex), or
  ``b""`` when invalidated. Every row write invalidates its suffix in the same
  transaction, so a cached hash is never staler than the rows (invariant 3);
  REPLICATE recomputes the invalidated ones from the rows, never walking
  directories. The suffix hash is BLAKE3 over ``hash:file,file\\n`` lines of
  the suffix's rows in hash order, i.e. over exactly what a directory walk
  would list, so a rehash from disk gives the same value.
- Group commit: ``GroupCommitter.commit_sync(ops)`` (in a worker thread) or
  ``await commit(ops)`` queues write operations; the first writer to arrive
  becomes the leader and applies every queued batch in one LMDB write
  transaction (one fsync), then wakes the others. The data files' own fsyncs
  happen before and are never batched away (invariant 1). Worker threads are
  not cancellable, so a cancelled request never strands its followers; its
  rows are still committed (indeterminate outcome, as invariant 1 allows).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import blake3
import lmdb

from common.threadpool import ThreadPool
from ring.hashing import suffix_of
from storage_node.object_core import ObjectRecord, row_supersedes

Op = Callable[[lmdb.Transaction], None]
DEFAULT_MAP_SIZE = 8 << 30
_ENVS: dict[Path, lmdb.Environment] = {}
_ENVS_LOCK = threading.Lock()
_DBS_LOCK = threading.Lock()


def open_env(root: Path, map_size: int = DEFAULT_MAP_SIZE) -> lmdb.Environment:
    """The drive's LMDB environment, opened once per process."""
    path = (root / "index.lmdb").resolve()
    with _ENVS_LOCK:
        env = _ENVS.get(path)
        if env is None:
            path.mkdir(exist_ok=True)  # never recreates a missing drive root
            env = lmdb.open(str(path), map_size=map_size, max_dbs=64, max_readers=1024,
                            sync=True, metasync=True, readahead=False, lock=True)
            _ENVS[path] = env
        return env


_DBS: dict[tuple[int, bytes], Any] = {}


def open_db(env: lmdb.Environment, name: bytes) -> Any:
    """A named sub-database handle, opened once per environment.

    Use this, never a bare ``env.open_db(name)``: py-lmdb's ``open_db``
    without a transaction waits for LMDB's writer lock *holding the GIL*, so
    while another thread commits (the group committer) the whole process
    deadlocks. Opening inside an explicit write transaction waits with the
    GIL released."""
    key = (id(env), name)
    handle = _DBS.get(key)
    if handle is None:
        with _DBS_LOCK:
            handle = _DBS.get(key)
            if handle is None:
                with env.begin(write=True) as txn:
                    handle = env.open_db(name, txn=txn)
                _DBS[key] = handle
    return handle


def forget_env(root: Path) -> None:
    """Close a cached environment (tests, drive replaced)."""
    path = (root / "index.lmdb").resolve()
    with _ENVS_LOCK:
        env = _ENVS.pop(path, None)
    if env is not None:
        for key in [k for k in _DBS if k[0] == id(env)]:
            del _DBS[key]
        env.close()


def _row_key(part: int, name_hash: str) -> bytes:
    return f"{part:08x}/{suffix_of(name_hash)}/{name_hash}".encode()


def _suffix_key(part: int, suffix: str) -> bytes:
    return f"{part:08x}/{suffix}".encode()


def _hash_rows(rows: list[tuple[str, ObjectRecord]]) -> str:
    h = blake3.blake3()
    for name_hash, rec in sorted(rows, key=lambda r: r[0]):
        h.update(f"{name_hash}:{','.join(sorted(rec.files))}\n".encode())
    return h.hexdigest(16)


class DriveIndex:
    """Blocking accessors for one drive's object rows (call from threads)."""

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self.objects = open_db(env, b"objects")
        self.suffixes = open_db(env, b"suffixes")

    # -- reads ---------------------------------------------------------------
    def get(self, part: int, name_hash: str) -> ObjectRecord | None:
        with self.env.begin(db=self.objects) as txn:
            raw = txn.get(_row_key(part, name_hash))
        return ObjectRecord.from_json(json.loads(raw)) if raw else None

    def _scan(self, txn: lmdb.Transaction, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        cur = txn.cursor(db=self.objects)
        if not cur.set_range(prefix):
            return
        for k, v in cur:
            if not bytes(k).startswith(prefix):
                return
            yield bytes(k), bytes(v)

    def rows(self, part: int, suffix: str | None = None) -> list[tuple[str, ObjectRecord]]:
        """``(hash, record)`` rows of a partition (or one suffix), hash order."""
        prefix = f"{part:08x}/{suffix}/" if suffix else f"{part:08x}/"
        with self.env.begin() as txn:
            return [(k.decode().rsplit("/", 1)[1], ObjectRecord.from_json(json.loads(v)))
                    for k, v in self._scan(txn, prefix.encode())]

    def partitions(self) -> list[int]:
        """Partitions with at least one row (for the replicator and auditor)."""
        out: list[int] = []
        with self.env.begin() as txn:
            cur = txn.cursor(db=self.objects)
            ok = cur.first()
            while ok:
                part = int(cur.key()[:8], 16)
                out.append(part)
                ok = cur.set_range(f"{part + 1:08x}/".encode())
        return out

    def suffix_hashes(self, part: int, recompute: tuple[str, ...] = ()) -> dict[str, str]:
        """``{suffix: hash}`` for the partition; invalidated suffixes (and
        ``recompute``) are rehashed from the rows and cached."""
        prefix = f"{part:08x}/".encode()
        with self.env.begin(write=True) as txn:
            cached: dict[str, bytes] = {}
            cur = txn.cursor(db=self.suffixes)
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    cached[k[len(prefix):].decode()] = v
            for s in recompute:
                cached[s] = b""
            out: dict[str, str] = {}
            for suffix, v in cached.items():
                if v:
                    out[suffix] = v.decode()
                    continue
                rows = [(k.decode().rsplit("/", 1)[1], ObjectRecord.from_json(json.loads(val)))
                        for k, val in self._scan(txn, prefix + suffix.encode() + b"/")]
                key = _suffix_key(part, suffix)
                if rows:
                    out[suffix] = _hash_rows(rows)
                    txn.put(key, out[suffix].encode(), db=self.suffixes)
                else:
                    txn.delete(key, db=self.suffixes)
            return out

    # -- write operations (applied in a write transaction) ---------------------
    def op_put_row(self, part: int, name_hash: str, rec: ObjectRecord, force: bool = False) -> Op:
        """Store ``rec`` unless the stored row is newer; delete it when the
        object has no files left. Invalidates the suffix hash either way."""
        key = _row_key(part, name_hash)
        val = json.dumps(rec.to_json(), separators=(",", ":")).encode()

        def op(txn: lmdb.Transaction) -> None:
            if not force:
                old = txn.get(key, db=self.objects)
                if old and not row_supersedes(rec, ObjectRecord.from_json(json.loads(bytes(old)))):
                    return
            if rec.files:
                txn.put(key, val, db=self.objects)
            else:
                txn.delete(key, db=self.objects)
            txn.put(_suffix_key(part, suffix_of(name_hash)), b"", db=self.suffixes)

        return op

    def op_delete_row(self, part: int, name_hash: str) -> Op:
        key = _row_key(part, name_hash)

        def op(txn: lmdb.Transaction) -> None:
            txn.delete(key, db=self.objects)
            txn.put(_suffix_key(part, suffix_of(name_hash)), b"", db=self.suffixes)

        return op

    def op_delete_row_if(self, part: int, name_hash: str, files: tuple[str, ...]) -> Op:
        """Delete the row only if it still lists exactly ``files`` (a rehash
        or reclaim must not undo a write that committed meanwhile)."""
        key = _row_key(part, name_hash)

        def op(txn: lmdb.Transaction) -> None:
            old = txn.get(key, db=self.objects)
            if old and tuple(json.loads(bytes(old)).get("files", ())) != tuple(files):
                return
            txn.delete(key, db=self.objects)
            txn.put(_suffix_key(part, suffix_of(name_hash)), b"", db=self.suffixes)

        return op

    def apply(self, ops: list[Op]) -> None:
        """Apply ``ops`` in one write transaction now (blocking)."""
        with self.env.begin(write=True) as txn:
            for op in ops:
                op(txn)


class _Waiter:
    __slots__ = ("ops", "event", "error")

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.event = threading.Event()
        self.error: BaseException | None = None


class GroupCommitter:
    """Batches concurrent writers' LMDB operations into one transaction.

    Thread-level leader/follower: a writer thread (``commit_sync``, called
    from the worker thread that just made its files durable, so a PUT costs
    one thread hop) queues its ops; if no commit is running it becomes the
    leader and commits every queued batch, one transaction (one fsync) per
    round, until the queue is empty; otherwise it waits for the leader.
    ``await commit(ops)`` is the same from the event loop (one thread hop).
    Followers hold their thread (one of the drive pool's) while they wait,
    so a round batches at most ``threads_per_drive`` writers."""

    def __init__(self, env: lmdb.Environment, pool: ThreadPool, enabled: bool = True) -> None:
        self.env = env
        self.pool = pool
        self.enabled = enabled
        self._lock = threading.Lock()
        self._pending: list[_Waiter] = []
        self._busy = False
        self.batches = 0
        self.ops = 0

    def _apply(self, batch: list[list[Op]]) -> None:
        with self.env.begin(write=True) as txn:
            for ops in batch:
                for op in ops:
                    op(txn)

    def commit_sync(self, ops: list[Op]) -> None:
        """(thread) Return once ``ops`` are committed and synced (or raise why not)."""
        if not self.enabled:
            self._apply([ops])
            with self._lock:
                self.batches += 1
                self.ops += 1
            return
        me = _Waiter(ops)
        with self._lock:
            self._pending.append(me)
            leader = not self._busy
            self._busy = True
        if not leader:
            me.event.wait()
        else:
            while True:
                with self._lock:
                    batch, self._pending = self._pending, []
                    if not batch:
                        self._busy = False
                        break
                    self.batches += 1
                    self.ops += len(batch)
                try:
                    self._apply([w.ops for w in batch])
                except Exception as exc:  # every writer in the batch learns why
                    for w in batch:
                        w.error = exc
                for w in batch:
                    w.event.set()
        if me.error is not None:
            raise me.error

    async def commit(self, ops: list[Op]) -> None:
        """(async) ``commit_sync`` in one of the drive's threads."""
        await self.pool.run(self.commit_sync, ops)


def stats(committers: dict[str, GroupCommitter]) -> dict[str, Any]:
    return {d: {"batches": c.batches, "ops": c.ops} for d, c in committers.items()}
