"""Container and account listing databases in the drive's LMDB environment.

Every container (and account) on a drive is one logical *database*: its info
record plus its rows, stored in named sub-databases of the drive's one LMDB
environment (``NodeContext.env``):

- ``listing.info``: ``ref.key`` -> JSON of what rarely changes (info, db id,
  ``cid``, partitions, account targets); ``ref.key + b"#"`` -> packed
  counters every row write updates (live rows, objects, bytes, row hash, max
  row id, stats timestamp). ``b"\\x00next_cid"`` holds the next database
  number (``cid``).
- ``listing.rows``: ``cid(8) + name`` -> the row (JSON, with its row id).
  Keys sort as names sort (UTF-8 byte order = code point order), so a listing
  with marker/prefix is one cursor range scan. LMDB keys stop at 511 bytes:
  a name longer than ``_KEY_NAME`` bytes lives in the *bucket* key
  ``cid + name[:_KEY_NAME] + b"\\0"`` (a list of rows sorted by name); NUL is
  never in a name, so keys stay monotonic in names (K1).
- ``listing.seq``: ``cid(8) + row_id(8)`` -> name. Every row write takes the
  database's next row id and drops the row's old id, so ``rows_since(point)``
  is one range scan (the replicator's sync point; S1).
- ``listing.parts``: ``kind + part(4) + ref.key`` -> b"" (databases per
  partition, for REPLICATE).
- ``listing.dirty``: ``ref.key`` -> b"": containers whose counts changed and
  are not yet reported to their account (the account reporter's durable queue).
- ``listing.syncs``: ``ref.key + peer db id`` -> the row id up to which this
  database's rows were sent to that peer (the replicator's sync points).

Counts, bytes and the row hash (XOR of row digests) change in the same
transaction as the row (C1), so they never disagree with the rows after a crash.
All functions here are blocking and take an open write or read transaction;
``ListingStore`` runs them in the drive's threads and group-commits writes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace

import lmdb

from common.timestamp import TICKS_PER_SECOND, Timestamp
from storage_node._listing_records import (  # noqa: F401 - re-exported
    DbRef,
    DbState,
    NotFound,
    container_row_of,
    dumps_compact,
    row_from_stored,
    row_to_stored,
)
from storage_node.rows_core import (
    DbInfo,
    ObjectRow,
    Row,
    RowError,
    merge_info,
    merge_rows,
    reclaimable,
    row_digest,
    row_usage,
)

_KEY_NAME = 480
_NEXT_CID = b"\x00next_cid"


class ListingDbs:
    """The sub-database handles of one environment (open once, in a thread)."""

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        # Opened inside an explicit write txn: a bare env.open_db waits for the
        # writer lock holding the GIL and deadlocks against the group committer
        # (see index.open_db). Not through index.open_db's cache: it is keyed by
        # id(env), which a closed environment's successor can reuse.
        with env.begin(write=True) as txn:
            self.info = env.open_db(b"listing.info", txn=txn)
            self.rows = env.open_db(b"listing.rows", txn=txn)
            self.seq = env.open_db(b"listing.seq", txn=txn)
            self.parts = env.open_db(b"listing.parts", txn=txn)
            self.dirty = env.open_db(b"listing.dirty", txn=txn)
            self.syncs = env.open_db(b"listing.syncs", txn=txn)

    # -- info ------------------------------------------------------------------
    def state(self, txn: lmdb.Transaction, ref: DbRef) -> DbState | None:
        return self._state_at(txn, ref.key)

    def _state_at(self, txn: lmdb.Transaction, key: bytes) -> DbState | None:
        raw = txn.get(key, db=self.info)
        if raw is None:
            return None
        return DbState.decode(bytes(raw), txn.get(key + b"#", db=self.info))

    def _save(self, txn: lmdb.Transaction, st: DbState) -> None:
        txn.put(st.ref.key, st.static_json(), db=self.info)
        self._save_counters(txn, st)

    def _save_counters(self, txn: lmdb.Transaction, st: DbState) -> None:
        txn.put(st.ref.key + b"#", st.counters(), db=self.info)

    def create(self, txn: lmdb.Transaction, ref: DbRef, part: int, info: DbInfo) -> DbState:
        raw = txn.get(_NEXT_CID, db=self.info)
        cid = int(raw) if raw else 1
        txn.put(_NEXT_CID, str(cid + 1).encode(), db=self.info)
        st = DbState(ref, cid, uuid.uuid4().hex, info)
        return self.note_partition(txn, st, part)

    def note_partition(self, txn: lmdb.Transaction, st: DbState, part: int) -> DbState:
        if part not in st.partitions:
            st = replace(st, partitions=(*st.partitions, part))
            txn.put(st.ref.kind[:1].encode() + part.to_bytes(4, "big") + st.ref.key, b"",
                    db=self.parts)
        self._save(txn, st)
        return st

    def set_info(self, txn: lmdb.Transaction, st: DbState, info: DbInfo) -> DbState:
        st = replace(st, info=info, stats_timestamp=max(
            st.stats_timestamp, info.put_timestamp, info.delete_timestamp))
        self._save(txn, st)
        if st.ref.kind == "container":
            txn.put(st.ref.key, b"", db=self.dirty)
        return st

    def in_partition(self, txn: lmdb.Transaction, kind: str, part: int) -> list[DbState]:
        prefix = kind[:1].encode() + part.to_bytes(4, "big")
        out = []
        cur = txn.cursor(db=self.parts)
        if cur.set_range(prefix):
            for key in cur.iternext(values=False):
                if not key.startswith(prefix):
                    break
                st = self._state_at(txn, key[len(prefix):])
                if st is not None:
                    out.append(st)
        return out

    def drop(self, txn: lmdb.Transaction, st: DbState) -> None:
        """Remove a whole database (after its new owners confirmed; invariant 3)."""
        pre = st.cid.to_bytes(8, "big")
        for sub in (self.rows, self.seq):
            cur = txn.cursor(db=sub)
            while cur.set_range(pre) and cur.key().startswith(pre):
                cur.delete()
        for part in st.partitions:
            txn.delete(st.ref.kind[:1].encode() + part.to_bytes(4, "big") + st.ref.key, db=self.parts)
        txn.delete(st.ref.key, db=self.dirty)
        cur = txn.cursor(db=self.syncs)
        while cur.set_range(st.ref.key) and cur.key().startswith(st.ref.key):
            cur.delete()
        txn.delete(st.ref.key, db=self.info)
        txn.delete(st.ref.key + b"#", db=self.info)

    # -- rows ------------------------------------------------------------------
    @staticmethod
    def _key(cid: int, name: str) -> tuple[bytes, bool]:
        raw = name.encode("utf-8")
        if len(raw) <= _KEY_NAME:
            return cid.to_bytes(8, "big") + raw, False
        return cid.to_bytes(8, "big") + raw[:_KEY_NAME] + b"\x00", True  # K1

    @staticmethod
    def _decode(key: bytes, val: bytes) -> list[tuple[Row, int]]:
        items = json.loads(bytes(val).decode("utf-8"))
        if not key.endswith(b"\x00"):
            items = [items]
        return [(row_from_stored(item), item[-1]) for item in items]

    def get_row(self, txn: lmdb.Transaction, cid: int, name: str) -> tuple[Row, int] | None:
        key, _ = self._key(cid, name)
        raw = txn.get(key, db=self.rows)
        if raw is None:
            return None
        for row, rowid in self._decode(key, raw):
            if row.name == name:
                return row, rowid
        return None

    def _store_row(self, txn: lmdb.Transaction, cid: int, row: Row | None, rowid: int,
                   name: str) -> None:
        key, bucket = self._key(cid, name)
        if not bucket:
            if row is None:
                txn.delete(key, db=self.rows)
            else:
                txn.put(key, dumps_compact(row_to_stored(row, rowid)), db=self.rows)
            return
        raw = txn.get(key, db=self.rows)
        items = [it for it in (json.loads(bytes(raw).decode()) if raw else []) if it[1] != name]
        if row is not None:
            items.append(row_to_stored(row, rowid))
            items.sort(key=lambda it: it[1])
        if items:
            txn.put(key, dumps_compact(items), db=self.rows)
        else:
            txn.delete(key, db=self.rows)

    def merge_row(self, txn: lmdb.Transaction, st: DbState, row: Row) -> tuple[DbState, bool]:
        """Merge one row (R1/R2); returns (state, changed). C1 and S1 hold."""
        if (st.ref.kind == "container") != isinstance(row, ObjectRow):
            raise RowError(f"a {st.ref.kind} database cannot hold that row")
        found = self.get_row(txn, st.cid, row.name)
        old, old_id = found if found else (None, 0)
        new = merge_rows(old, row)
        stats_ts = max(st.stats_timestamp, row.timestamp)
        if new == old:
            return st, False
        pre = st.cid.to_bytes(8, "big")
        rowid = st.max_row + 1
        if found:
            txn.delete(pre + old_id.to_bytes(8, "big"), db=self.seq)
        txn.put(pre + rowid.to_bytes(8, "big"), row.name.encode("utf-8"), db=self.seq)
        self._store_row(txn, st.cid, new, rowid, row.name)
        (r0, o0, b0), (r1, o1, b1) = row_usage(old), row_usage(new)
        digest = (row_digest(old) if old is not None else 0) ^ row_digest(new)
        st = replace(st, row_count=st.row_count + r1 - r0, object_count=st.object_count + o1 - o0,
                     bytes_used=st.bytes_used + b1 - b0, hash=st.hash ^ digest, max_row=rowid,
                     stats_timestamp=stats_ts)
        self._save_counters(txn, st)
        if st.ref.kind == "container" and (r0, o0, b0) != (r1, o1, b1):
            txn.put(st.ref.key, b"", db=self.dirty)
        return st, True

    def merge_rows(self, txn: lmdb.Transaction, ref: DbRef, part: int, rows: list[Row],
                   info: DbInfo | None = None) -> tuple[int, DbState]:
        """Replication's merge (S1): rows and info pushed by a peer, each by its
        merge rule; creates the database when ``info`` is given (else
        ``NotFound``). Returns (rows changed, state)."""
        st = self.state(txn, ref)
        if st is None:
            if info is None:
                raise NotFound(f"{ref.kind} not found (send info to create it)")
            st = self.create(txn, ref, part, info)
        elif part not in st.partitions:
            st = self.note_partition(txn, st, part)
        if info is not None:
            merged = merge_info(st.info, info)
            if merged != st.info:
                st = self.set_info(txn, st, merged)
        changed = 0
        for row in rows:
            st, did = self.merge_row(txn, st, row)
            changed += did
        return changed, st

    def reclaim(self, txn: lmdb.Transaction, st: DbState, now: Timestamp,
                reclaim_age: float) -> tuple[DbState, int]:
        """Drop tombstone rows older than reclaim_age (R4, invariant 2)."""
        doomed = [row for row in self.iter_rows(txn, st.cid, None, True, False)
                  if reclaimable(row, now, reclaim_age)]
        for row in doomed:
            found = self.get_row(txn, st.cid, row.name)
            assert found is not None
            txn.delete(st.cid.to_bytes(8, "big") + found[1].to_bytes(8, "big"), db=self.seq)
            self._store_row(txn, st.cid, None, 0, row.name)
            st = replace(st, hash=st.hash ^ row_digest(row))
        if doomed:
            self._save_counters(txn, st)
        return st, len(doomed)

    def reclaim_db(self, txn: lmdb.Transaction, st: DbState, now: Timestamp,
                   reclaim_age: float) -> tuple[DbState | None, int]:
        """``reclaim``, then drop the whole database when it is deleted, holds
        no row at all and its delete is older than reclaim_age (as Swift
        reclaims a deleted DB file; invariant 2). Returns (None, n) if dropped."""
        st, n = self.reclaim(txn, st, now, reclaim_age)
        empty = next(iter(self.iter_rows(txn, st.cid, None, True, False)), None) is None
        age = now.ticks - max(st.info.delete_timestamp, st.info.status_changed_at).ticks
        if st.deleted and empty and age > int(reclaim_age * TICKS_PER_SECOND):
            self.drop(txn, st)
            return None, n
        return st, n

    def iter_rows(self, txn: lmdb.Transaction, cid: int, start: str | None, inclusive: bool,
                  reverse: bool) -> Iterator[Row]:
        """Rows in name order from ``start`` (the ``Scan`` of listing_core, L2)."""
        pre = cid.to_bytes(8, "big")
        cur = txn.cursor(db=self.rows)
        if not reverse:
            seek = pre + (start.encode("utf-8")[:_KEY_NAME] if start else b"")
            if not cur.set_range(seek):
                return
            it = cur.iternext()
        else:
            seek = self._key(cid, start)[0] if start else (cid + 1).to_bytes(8, "big")
            if cur.set_range(seek):
                if cur.key() != seek and not cur.prev():
                    return
            elif not cur.last():
                return
            it = cur.iterprev()
        for key, val in it:
            if not key.startswith(pre):
                return
            rows = self._decode(key, val)
            for row, _ in (reversed(rows) if reverse else rows):
                if start is not None:
                    if row.name == start and not inclusive:
                        continue
                    if (row.name > start) if reverse else (row.name < start):
                        continue
                yield row

    def rows_since(self, txn: lmdb.Transaction, st: DbState, point: int,
                   limit: int) -> tuple[list[Row], int]:
        """S1: rows written after row id ``point`` (current versions), at most
        ``limit``, and the row id to ask from next time."""
        pre = st.cid.to_bytes(8, "big")
        cur = txn.cursor(db=self.seq)
        rows: list[Row] = []
        new_point = point
        if cur.set_range(pre + (point + 1).to_bytes(8, "big")):
            for key, name in cur:
                if not key.startswith(pre) or len(rows) >= limit:
                    break
                found = self.get_row(txn, st.cid, name.decode("utf-8"))
                if found is not None:
                    rows.append(found[0])
                new_point = int.from_bytes(key[8:], "big")
        return rows, new_point

    # -- sync points (Swift's outgoing_sync): how far each peer database has
    # been sent this one's rows, by the peer's db id; kept across restarts ----
    def sync_points(self, txn: lmdb.Transaction, ref: DbRef) -> dict[str, int]:
        out = {}
        cur = txn.cursor(db=self.syncs)
        if cur.set_range(ref.key):
            for key, val in cur:
                if not bytes(key).startswith(ref.key):
                    break
                out[bytes(key)[len(ref.key):].decode()] = int(bytes(val))
        return out

    def set_sync_point(self, txn: lmdb.Transaction, ref: DbRef, remote_id: str, point: int) -> None:
        if self.state(txn, ref) is None:
            raise NotFound(f"{ref.kind} not found")
        if not remote_id or not remote_id.isalnum() or point < 0:
            raise RowError("a sync point needs a remote db id (alphanumeric) and a point >= 0")
        txn.put(ref.key + remote_id.encode(), str(point).encode(), db=self.syncs)

    def dirty_refs(self, txn: lmdb.Transaction, limit: int, after: bytes = b"") -> list[DbRef]:
        """Up to ``limit`` dirty containers with keys after ``after``, wrapping
        around, so containers that keep failing cannot starve the others."""
        out: list[DbRef] = []
        seen: set[bytes] = set()
        cur = txn.cursor(db=self.dirty)
        for start in (after, b""):
            if not (cur.set_range(after + b"\x00") if start else cur.first()):
                continue
            for key in cur.iternext(values=False):
                key = bytes(key)
                if key in seen or len(out) >= limit:
                    break
                seen.add(key)
                st = self._state_at(txn, key)
                if st is not None:
                    out.append(st.ref)
        return out

    def clear_dirty(self, txn: lmdb.Transaction, ref: DbRef, seen_max_row: int,
                    seen_info: DbInfo) -> None:
        """Clear the dirty mark unless the database changed since it was reported."""
        st = self.state(txn, ref)
        if st is None or (st.max_row == seen_max_row and st.info == seen_info):
            txn.delete(ref.key, db=self.dirty)
