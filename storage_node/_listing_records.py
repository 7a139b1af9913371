"""Records of the listing databases (``listing_db``): which database
(``DbRef``), its state (``DbState``: info plus the counters C1 keeps in step
with the rows), and how rows are stored (JSON lists with timestamps as
``(ticks, offset)`` ints, so reading a listing parses no timestamp text; our
own data, decoded unchecked). Pure: no LMDB, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field, replace
from typing import Any

from common.timestamp import Timestamp
from storage_node.rows_core import (
    ZERO,
    ContainerRow,
    DbInfo,
    ObjectRow,
    Row,
    RowError,
    info_from_dict,
    info_to_dict,
)

_COUNTERS = struct.Struct(">qqqQQQqQ")
_STATIC_CACHE: dict[bytes, DbState] = {}  # decoded static parts by their bytes

class NotFound(RowError):
    def __init__(self, message: str, state: DbState | None = None) -> None:
        super().__init__(message, status=404)
        self.state = state


@dataclass(frozen=True, slots=True)
class DbRef:
    """Which database: kind "container" (rows are objects) or "account"."""

    kind: str
    account: str
    container: str | None = None
    key: bytes = field(init=False, repr=False, compare=False)  # the info key, computed once

    def __post_init__(self) -> None:
        path = f"{self.account}/{self.container or ''}".encode("utf-8", "surrogateescape")
        key = self.kind[:1].encode() + hashlib.md5(path, usedforsecurity=False).digest()
        object.__setattr__(self, "key", key)

    @property
    def path(self) -> str:
        return self.account if self.container is None else f"{self.account}/{self.container}"


@dataclass(frozen=True, slots=True)
class DbState:
    ref: DbRef
    cid: int
    db_id: str
    info: DbInfo
    row_count: int = 0  # live rows: objects of a container, containers of an account
    object_count: int = 0
    bytes_used: int = 0
    hash: int = 0
    max_row: int = 0
    stats_timestamp: Timestamp = ZERO  # newest row/put/delete timestamp seen (R2)
    partitions: tuple[int, ...] = ()
    # where a container reports its row: ((host, port, device, partition), ...)
    account_targets: tuple[tuple[str, int, str, int], ...] = ()

    @property
    def deleted(self) -> bool:
        return self.info.is_deleted(self.row_count)

    @property
    def hash_hex(self) -> str:
        return f"{self.hash:032x}"

    def static_json(self) -> bytes:
        """What changes rarely (info, ids, partitions, targets): JSON at ``ref.key``."""
        return json.dumps({
            "kind": self.ref.kind, "account": self.ref.account, "container": self.ref.container,
            "cid": self.cid, "id": self.db_id, "info": info_to_dict(self.info),
            "parts": list(self.partitions), "targets": [list(t) for t in self.account_targets],
        }, separators=(",", ":")).encode()

    def counters(self) -> bytes:
        """What every row write changes: packed at ``ref.key + b"#"`` (cheap to rewrite)."""
        return _COUNTERS.pack(self.row_count, self.object_count, self.bytes_used,
                              self.hash >> 64, self.hash & (2**64 - 1), self.max_row,
                              self.stats_timestamp.ticks, self.stats_timestamp.offset)

    @classmethod
    def decode(cls, static: bytes, counters: bytes | None) -> DbState:
        base = _STATIC_CACHE.get(static)
        if base is None:
            d = json.loads(static)
            base = cls(DbRef(d["kind"], d["account"], d["container"]), d["cid"], d["id"],
                       info_from_dict(d["info"]), partitions=tuple(d["parts"]),
                       account_targets=tuple(tuple(t) for t in d.get("targets", ())))
            if len(_STATIC_CACHE) > 4096:
                _STATIC_CACHE.clear()
            _STATIC_CACHE[static] = base
        if not counters:
            return base
        rows, objs, nbytes, hi, lo, max_row, ticks, off = _COUNTERS.unpack(counters)
        return replace(base, row_count=rows, object_count=objs, bytes_used=nbytes,
                       hash=(hi << 64) | lo, max_row=max_row, stats_timestamp=Timestamp(ticks, off))

    def summary(self) -> dict[str, Any]:
        """What REPLICATE answers for this database."""
        return {"account": self.ref.account, "container": self.ref.container, "id": self.db_id,
                "max_row": self.max_row, "hash": self.hash_hex, "info": info_to_dict(self.info),
                "rows": self.row_count, "objects": self.object_count, "bytes": self.bytes_used,
                "deleted": self.deleted}


def container_row_of(st: DbState) -> ContainerRow:
    """The row a container reports to its account (R2)."""
    assert st.ref.container is not None
    return ContainerRow(st.ref.container, st.info.put_timestamp, st.info.delete_timestamp,
                        st.object_count, st.bytes_used, st.stats_timestamp)


# -- stored row encoding: JSON lists with timestamps as (ticks, offset) ints, so
# reading a listing parses no timestamp text. Our own data: decoded unchecked.

def row_to_stored(row: Row, rowid: int) -> list[Any]:
    if isinstance(row, ObjectRow):
        ts, cts = row.timestamp, row.ctype_timestamp
        if cts == ZERO:
            return ["o", row.name, ts.ticks, ts.offset, row.size, row.content_type, row.etag,
                    1 if row.deleted else 0, rowid]
        return ["o", row.name, ts.ticks, ts.offset, row.size, row.content_type, row.etag,
                1 if row.deleted else 0, cts.ticks, cts.offset, rowid]
    p, d, s = row.put_timestamp, row.delete_timestamp, row.stats_timestamp
    return ["c", row.name, p.ticks, p.offset, d.ticks, d.offset, row.object_count,
            row.bytes_used, s.ticks, s.offset, rowid]


def row_from_stored(item: list[Any]) -> Row:
    if item[0] == "o":
        cts = Timestamp(item[8], item[9]) if len(item) == 11 else ZERO  # [.., ctype_ts, rowid]
        return ObjectRow(item[1], Timestamp(item[2], item[3]), item[4], item[5], item[6],
                         bool(item[7]), cts)
    return ContainerRow(item[1], Timestamp(item[2], item[3]), Timestamp(item[4], item[5]),
                        item[6], item[7], Timestamp(item[8], item[9]))


def dumps_compact(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
