"""Listing rows and their merge rules (sans-I/O: no trio, no clock, no disk).

Two kinds of listing database, as in Swift: a *container* database holds one
``ObjectRow`` per object name, an *account* database one ``ContainerRow`` per
container name. Each database also has a ``DbInfo`` (put/delete/status
timestamps, metadata with a timestamp per key).

Rules (invariant 2: last write wins by timestamp; a delete is a tombstone):

R1. ``merge_object_rows(a, b)`` merges an object row in two parts, each by
    its own timestamp (Swift's ``ctype_timestamp``): the *data* part (size,
    etag, deleted) from the row with the newer ``timestamp`` (the PUT or
    DELETE), the *content type* from the row with the newer
    ``ctype_ts`` (a POST that set Content-Type, else the PUT itself), so a
    POST's content type is neither lost to nor clobbers a racing PUT. Equal
    timestamps are broken by a fixed total order on the part's fields, so
    merge is commutative, associative and idempotent (replicas converge
    whatever the arrival order). A deleted row is a tombstone row, kept until
    reclaim_age.
R2. ``merge_container_rows`` takes the max put and delete timestamps
    independently; counts come from the side with the larger
    ``(stats_timestamp, object_count, bytes_used)``. ``stats_timestamp`` is the
    newest object-row timestamp the reporting container replica had seen (a
    timestamp the proxy issued; storage nodes never invent one). Swift takes
    the counts of whichever update arrived last, which is not commutative.
R3. ``merge_info`` keeps min created_at, max put/delete/status_changed_at, and
    per metadata key the value with the newer timestamp (an empty value is a
    metadata tombstone, hidden from headers).
R4. A tombstone row is reclaimable only when ``now - timestamp > reclaim_age``
    (``reclaimable``), enforced here so no caller can get it wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from common.timestamp import TICKS_PER_SECOND, Timestamp

ZERO = Timestamp(0)


class RowError(ValueError):
    """A row or request field that cannot be used; ``status`` is the HTTP hint."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ObjectRow:
    """One object in a container listing (R1). ``ctype_timestamp`` is when
    ``content_type`` was set if later than ``timestamp`` (a POST), else ZERO
    (normalised, so equal rows compare and encode equal)."""

    name: str
    timestamp: Timestamp
    size: int = 0
    content_type: str = ""
    etag: str = ""
    deleted: bool = False
    ctype_timestamp: Timestamp = ZERO

    def __post_init__(self) -> None:
        if self.ctype_timestamp != ZERO and self.ctype_timestamp <= self.timestamp:
            object.__setattr__(self, "ctype_timestamp", ZERO)

    @property
    def ctype_ts(self) -> Timestamp:
        """When the content type was set: the POST's or the data's timestamp."""
        return max(self.timestamp, self.ctype_timestamp)

    def data_key(self) -> tuple[Timestamp, bool, int, str]:
        return (self.timestamp, self.deleted, self.size, self.etag)

    def ctype_key(self) -> tuple[Timestamp, str]:
        return (self.ctype_ts, self.content_type)


@dataclass(frozen=True, slots=True)
class ContainerRow:
    """One container in an account listing (R2)."""

    name: str
    put_timestamp: Timestamp = ZERO
    delete_timestamp: Timestamp = ZERO
    object_count: int = 0
    bytes_used: int = 0
    stats_timestamp: Timestamp = ZERO

    @property
    def deleted(self) -> bool:
        """As Swift: deleted when the delete is newer than the put and it is empty."""
        return self.delete_timestamp > self.put_timestamp and self.object_count == 0

    @property
    def timestamp(self) -> Timestamp:
        """The newest timestamp in the row (what reclaim_age is measured from)."""
        return max(self.put_timestamp, self.delete_timestamp, self.stats_timestamp)

    def stats_key(self) -> tuple[Timestamp, int, int]:
        return (self.stats_timestamp, self.object_count, self.bytes_used)


Row = ObjectRow | ContainerRow


def merge_object_rows(a: ObjectRow | None, b: ObjectRow) -> ObjectRow:
    """R1: data and content type each from the newer side; ties by a total
    order on the part's fields."""
    if a is None:
        return b
    if a.name != b.name:
        raise RowError(f"cannot merge rows of different names {a.name!r} / {b.name!r}")
    data = b if b.data_key() > a.data_key() else a
    ctype = b if b.ctype_key() > a.ctype_key() else a
    if data is ctype:
        return data
    return ObjectRow(a.name, data.timestamp, data.size, ctype.content_type, data.etag,
                     data.deleted, ctype.ctype_ts)


def merge_container_rows(a: ContainerRow | None, b: ContainerRow) -> ContainerRow:
    """R2: timestamps by max, counts from the newer stats."""
    if a is None:
        return b
    if a.name != b.name:
        raise RowError(f"cannot merge rows of different names {a.name!r} / {b.name!r}")
    stats = b if b.stats_key() > a.stats_key() else a
    return ContainerRow(
        a.name,
        max(a.put_timestamp, b.put_timestamp),
        max(a.delete_timestamp, b.delete_timestamp),
        stats.object_count,
        stats.bytes_used,
        stats.stats_timestamp,
    )


def merge_rows(a: Row | None, b: Row) -> Row:
    if isinstance(b, ObjectRow):
        if a is not None and not isinstance(a, ObjectRow):
            raise RowError("cannot merge an object row into a container row")
        return merge_object_rows(a, b)
    if a is not None and not isinstance(a, ContainerRow):
        raise RowError("cannot merge a container row into an object row")
    return merge_container_rows(a, b)


def row_is_live(row: Row) -> bool:
    return not row.deleted


def reclaimable(row: Row, now: Timestamp, reclaim_age: float) -> bool:
    """R4 / invariant 2: only a tombstone older than reclaim_age may be dropped."""
    if not row.deleted:
        return False
    return now.ticks - row.timestamp.ticks > int(reclaim_age * TICKS_PER_SECOND)


def row_usage(row: Row | None) -> tuple[int, int, int]:
    """What one row adds to its database's totals: (rows, objects, bytes).

    Container db: (objects, objects, bytes) of live rows. Account db:
    (containers, objects, bytes) of live container rows."""
    if row is None or row.deleted:
        return (0, 0, 0)
    if isinstance(row, ObjectRow):
        return (1, 1, row.size)
    return (1, row.object_count, row.bytes_used)


# -- wire/storage encoding: a JSON-able list in a fixed field order ----------

def row_to_list(row: Row) -> list[Any]:
    """ObjectRow -> ["o", name, ts, size, content_type, etag, deleted
    (, ctype_ts only when a POST set the content type later)];
    ContainerRow -> ["c", name, put_ts, delete_ts, count, bytes, stats_ts].
    A row without a later content type encodes as before the field existed."""
    if isinstance(row, ObjectRow):
        out = ["o", row.name, row.timestamp.internal, row.size, row.content_type,
               row.etag, 1 if row.deleted else 0]
        if row.ctype_timestamp != ZERO:
            out.append(row.ctype_timestamp.internal)
        return out
    return ["c", row.name, row.put_timestamp.internal, row.delete_timestamp.internal,
            row.object_count, row.bytes_used, row.stats_timestamp.internal]


def row_from_list(item: Any) -> Row:
    """Inverse of ``row_to_list``; raises ``RowError`` (400) on a malformed row."""
    try:
        kind = item[0]
        if kind == "o" and len(item) in (7, 8):
            name, ts, size, ctype, etag, deleted = item[1:7]
            cts = Timestamp.parse(item[7]) if len(item) == 8 else ZERO
            row: Row = ObjectRow(check_name(name), Timestamp.parse(ts), _nonneg(size),
                                 str(ctype), str(etag), bool(deleted), cts)
            return row
        if kind == "c" and len(item) == 7:
            name, put, delete, count, nbytes, stats = item[1:]
            return ContainerRow(check_name(name), Timestamp.parse(put), Timestamp.parse(delete),
                                _nonneg(count), _nonneg(nbytes), Timestamp.parse(stats))
    except (TypeError, IndexError, ValueError) as exc:
        raise RowError(f"malformed row {item!r}: {exc}") from exc
    raise RowError(f"malformed row {item!r}")


def _nonneg(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RowError(f"expected a non-negative integer, got {value!r}")
    return value


def check_name(name: Any) -> str:
    """Names are non-empty text without NUL or lone surrogates (Swift's rule)."""
    if not isinstance(name, str) or not name:
        raise RowError("name must be a non-empty string")
    if "\x00" in name:
        raise RowError("name contains NUL")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RowError("name is not valid UTF-8") from exc
    return name


def row_digest(row: Row) -> int:
    """A 128-bit digest of one row; a database's hash is the XOR of its rows'
    digests (Swift's "chexor"), so it is order-free and updated in O(1)."""
    text = "\x00".join(str(x) for x in row_to_list(row))
    return int.from_bytes(hashlib.md5(text.encode("utf-8"), usedforsecurity=False).digest(), "big")


# -- database info -------------------------------------------------------------

MetaItem = tuple[str, str, Timestamp]  # (canonical header name, value, timestamp)


def canonical_header(name: str) -> str:
    """``x-container-meta-color`` -> ``X-Container-Meta-Color``."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


@dataclass(frozen=True, slots=True)
class DbInfo:
    """Info of one container or account database (R3); counts live with the rows."""

    created_at: Timestamp = ZERO
    put_timestamp: Timestamp = ZERO
    delete_timestamp: Timestamp = ZERO
    status_changed_at: Timestamp = ZERO
    metadata: tuple[MetaItem, ...] = field(default=())  # sorted by name

    def meta(self) -> dict[str, tuple[str, Timestamp]]:
        return {k: (v, ts) for k, v, ts in self.metadata}

    def visible_metadata(self) -> dict[str, str]:
        return {k: v for k, v, _ in self.metadata if v}

    def is_deleted(self, count: int) -> bool:
        """As Swift: deleted when the delete is newer than the put and it is empty."""
        return count == 0 and self.delete_timestamp > self.put_timestamp

    def with_metadata(self, updates: dict[str, tuple[str, Timestamp]]) -> DbInfo:
        merged = _merge_meta(self.meta(), updates)
        return _replace_meta(self, merged)


def _merge_meta(a: dict[str, tuple[str, Timestamp]],
                b: dict[str, tuple[str, Timestamp]]) -> dict[str, tuple[str, Timestamp]]:
    out = dict(a)
    for key, (value, ts) in b.items():
        key = canonical_header(key)
        cur = out.get(key)
        if cur is None or (ts, value) > (cur[1], cur[0]):
            out[key] = (value, ts)
    return out


def _replace_meta(info: DbInfo, meta: dict[str, tuple[str, Timestamp]]) -> DbInfo:
    items = tuple(sorted((k, v, ts) for k, (v, ts) in meta.items()))
    return DbInfo(info.created_at, info.put_timestamp, info.delete_timestamp,
                  info.status_changed_at, items)


def merge_info(a: DbInfo | None, b: DbInfo) -> DbInfo:
    """R3: commutative, associative, idempotent."""
    if a is None:
        return b
    created = min((t for t in (a.created_at, b.created_at) if t != ZERO), default=ZERO)
    merged = DbInfo(created, max(a.put_timestamp, b.put_timestamp),
                    max(a.delete_timestamp, b.delete_timestamp),
                    max(a.status_changed_at, b.status_changed_at))
    return _replace_meta(merged, _merge_meta(a.meta(), b.meta()))


def info_to_dict(info: DbInfo) -> dict[str, Any]:
    return {
        "created_at": info.created_at.internal,
        "put_timestamp": info.put_timestamp.internal,
        "delete_timestamp": info.delete_timestamp.internal,
        "status_changed_at": info.status_changed_at.internal,
        "metadata": [[k, v, ts.internal] for k, v, ts in info.metadata],
    }


def info_from_dict(d: Any) -> DbInfo:
    try:
        meta = {str(k): (str(v), Timestamp.parse(ts)) for k, v, ts in d.get("metadata", [])}
        base = DbInfo(Timestamp.parse(d["created_at"]), Timestamp.parse(d["put_timestamp"]),
                      Timestamp.parse(d["delete_timestamp"]),
                      Timestamp.parse(d["status_changed_at"]))
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise RowError(f"malformed database info: {exc}") from exc
    return _replace_meta(base, _merge_meta({}, meta))


def apply_put(info: DbInfo | None, ts: Timestamp, count: int) -> tuple[DbInfo, bool]:
    """A PUT of the database at ``ts``: returns (new info, created) where
    ``created`` says the database did not exist or was deleted (201 vs 202)."""
    was_deleted = info is None or info.is_deleted(count)
    base = info or DbInfo(created_at=ts)
    put = max(base.put_timestamp, ts)
    now_deleted = count == 0 and base.delete_timestamp > put
    changed = base.status_changed_at
    if was_deleted and not now_deleted:
        changed = max(changed, ts)
    new = DbInfo(base.created_at if base.created_at != ZERO else ts, put,
                 base.delete_timestamp, changed, base.metadata)
    return new, was_deleted


def apply_delete(info: DbInfo, ts: Timestamp, count: int) -> DbInfo:
    delete = max(info.delete_timestamp, ts)
    changed = info.status_changed_at
    if not info.is_deleted(count) and count == 0 and delete > info.put_timestamp:
        changed = max(changed, ts)
    return DbInfo(info.created_at, info.put_timestamp, delete, changed, info.metadata)
