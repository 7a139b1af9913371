"""Object decisions, sans I/O: which file wins, what a request may do, which
headers persist. The shell (``object_server``, ``diskfile``) does the I/O.

Rules (Swift's, stated once here):

- A hash directory holds ``<ts>.data``, ``<ts>.ts`` (tombstone) and
  ``<ts>.meta`` (POST) files. The newest ``.data``/``.ts`` wins (a tombstone
  wins a tie); the newest ``.meta`` newer than a winning ``.data`` applies;
  every other file is obsolete and is removed (invariant 2: last write wins).
- PUT and DELETE need a timestamp newer than the winning ``.data``/``.ts``
  (a newer ``.meta`` then applies to the new data); POST needs one newer than the data and the current ``.meta``
  (409 otherwise, with ``X-Backend-Timestamp``). POST on a missing object 404s.
- An object whose ``X-Delete-At`` has passed reads as missing.
- PUT persists ``Content-Type``, ``X-Object-Meta-*``, ``X-Object-Sysmeta-*``,
  ``X-Object-Transient-Sysmeta-*`` and ``POSTABLE``; a POST replaces the user
  metadata, transient sysmeta and ``POSTABLE`` headers (those it does not send
  are dropped) and may replace ``Content-Type`` (fast-post); sysmeta stays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from functools import lru_cache
from typing import Any, Protocol

from common.timestamp import Timestamp, TimestampError

DATA, TOMB, META = ".data", ".ts", ".meta"
POSTABLE = (
    "content-disposition",
    "content-encoding",
    "content-language",
    "cache-control",
    "expires",
    "x-delete-at",
    "x-object-manifest",
    "x-static-large-object",
    "x-robots-tag",
)
_USER_PREFIXES = ("x-object-meta-", "x-object-transient-sysmeta-")
_SYS_PREFIX = "x-object-sysmeta-"


class HeaderGetter(Protocol):
    """Anything with case-insensitive ``get`` (``common.http.Headers``, a dict
    with lower-case keys)."""

    def get(self, name: str, default: str | None = None, /) -> str | None: ...


class ObjectError(Exception):
    """A request the object rules refuse; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class FileSet:
    """The outcome of ``choose_files`` on one hash directory's listing."""

    data: str | None = None
    tomb: str | None = None
    meta: str | None = None
    obsolete: tuple[str, ...] = ()

    @property
    def live(self) -> tuple[str, ...]:
        return tuple(f for f in (self.data, self.tomb, self.meta) if f)


def file_timestamp(filename: str) -> Timestamp:
    return Timestamp.parse(filename.rsplit(".", 1)[0])


def choose_files(names: Iterable[str]) -> FileSet:
    """Apply the winner rules to a directory listing; unknown names (temp
    files, junk) are obsolete."""
    known: list[tuple[Timestamp, int, str]] = []
    junk: list[str] = []
    rank = {TOMB: 2, DATA: 1, META: 0}
    for n in names:
        ext = "." + n.rsplit(".", 1)[-1] if "." in n else ""
        if ext not in rank:
            junk.append(n)
            continue
        try:
            known.append((file_timestamp(n), rank[ext], n))
        except TimestampError:
            junk.append(n)
    known.sort(reverse=True)
    winner: tuple[Timestamp, int, str] | None = next((k for k in known if k[1] > 0), None)
    meta = None
    if winner is not None and winner[1] == 1:
        meta = next((k for k in known if k[1] == 0 and k[0] > winner[0]), None)
    keep = {k[2] for k in (winner, meta) if k is not None}
    obsolete = tuple(sorted(junk + [k[2] for k in known if k[2] not in keep]))
    if winner is None:
        return FileSet(obsolete=obsolete)
    return FileSet(
        data=winner[2] if winner[1] == 1 else None,
        tomb=winner[2] if winner[1] == 2 else None,
        meta=meta[2] if meta else None,
        obsolete=obsolete,
    )


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """One object's state on one drive: the LMDB index row (a cache of the
    files; see ``integrity`` for the file format)."""

    name: str
    data_ts: Timestamp | None = None
    tomb_ts: Timestamp | None = None
    meta_ts: Timestamp | None = None
    size: int = 0
    etag: str = ""
    root: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # persisted, lower-case keys, effective
    files: tuple[str, ...] = ()

    @property
    def exists(self) -> bool:
        return self.data_ts is not None

    @property
    def newest(self) -> Timestamp | None:
        """The newest timestamp this record holds (409 rules, row precedence)."""
        ts = [t for t in (self.data_ts, self.tomb_ts, self.meta_ts) if t is not None]
        return max(ts) if ts else None

    @property
    def data_file(self) -> str | None:
        return f"{self.data_ts.internal}{DATA}" if self.data_ts else None

    def delete_at(self) -> int | None:
        v = self.headers.get("x-delete-at")
        return int(v) if v and v.isdigit() else None

    def expired(self, now: float) -> bool:
        d = self.delete_at()
        return d is not None and d <= now

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "data_ts": self.data_ts.internal if self.data_ts else None,
            "tomb_ts": self.tomb_ts.internal if self.tomb_ts else None,
            "meta_ts": self.meta_ts.internal if self.meta_ts else None,
            "size": self.size,
            "etag": self.etag,
            "root": self.root,
            "headers": self.headers,
            "files": list(self.files),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ObjectRecord:
        def ts(k: str) -> Timestamp | None:
            v = d.get(k)
            return Timestamp.parse(v) if v else None

        return cls(
            name=d["name"],
            data_ts=ts("data_ts"),
            tomb_ts=ts("tomb_ts"),
            meta_ts=ts("meta_ts"),
            size=int(d.get("size", 0)),
            etag=d.get("etag", ""),
            root=d.get("root", ""),
            headers=dict(d.get("headers", {})),
            files=tuple(d.get("files", ())),
        )


def record_from_files(fs: FileSet, data_meta: Mapping[str, Any] | None, post_meta: Mapping[str, Any] | None,
                      name: str) -> ObjectRecord:
    """Build the index row from the winning files' metadata (``data_meta`` is
    the ``.data`` trailer's JSON, ``post_meta`` the ``.meta`` file's JSON)."""
    if fs.tomb:
        return ObjectRecord(name=name, tomb_ts=file_timestamp(fs.tomb), files=fs.live)
    if not fs.data or data_meta is None:
        return ObjectRecord(name=name, files=fs.live)
    headers = dict(data_meta.get("headers", {}))
    if fs.meta and post_meta is not None:
        headers = apply_post(headers, post_meta.get("headers", {}))
    return ObjectRecord(
        name=data_meta.get("name", name),
        data_ts=file_timestamp(fs.data),
        meta_ts=file_timestamp(fs.meta) if fs.meta else None,
        size=int(data_meta["size"]),
        etag=data_meta["etag"],
        root=data_meta.get("root", ""),
        headers=headers,
        files=fs.live,
    )


def row_supersedes(new: ObjectRecord, old: ObjectRecord | None) -> bool:
    """Row precedence for the index: a row computed from a later listing is
    never older, so committing only non-older rows makes racing commits safe."""
    if old is None:
        return True
    key_new = (new.data_ts or new.tomb_ts or Timestamp(0), new.meta_ts or Timestamp(0))
    key_old = (old.data_ts or old.tomb_ts or Timestamp(0), old.meta_ts or Timestamp(0))
    return key_new >= key_old


# -- request rules -------------------------------------------------------------

def require_timestamp(headers: HeaderGetter) -> Timestamp:
    v = headers.get("x-timestamp")
    if not v:
        raise ObjectError(400, "Missing X-Timestamp header")
    try:
        return Timestamp.parse(v)
    except TimestampError as exc:
        raise ObjectError(400, f"Invalid X-Timestamp: {exc}") from exc


def _conflict(held: Timestamp) -> ObjectError:
    return ObjectError(409, f"request timestamp is not newer than {held.internal}",
                       {"X-Backend-Timestamp": held.internal})


def check_put_or_delete(rec: ObjectRecord | None, ts: Timestamp) -> None:
    """409 unless ``ts`` is newer than the held data or tombstone (invariant
    2). As Swift, a newer ``.meta`` does not block an older PUT: it applies
    to the new data, which is last-write-wins for metadata."""
    held = (rec.data_ts or rec.tomb_ts) if rec else None
    if held is not None and ts <= held:
        raise _conflict(held)


def check_post(rec: ObjectRecord | None, ts: Timestamp, now: float) -> ObjectRecord:
    """POST needs live data older than ``ts``; returns the record."""
    if rec is None or not rec.exists or rec.expired(now):
        hdrs = {"X-Backend-Timestamp": rec.tomb_ts.internal} if rec and rec.tomb_ts else {}
        raise ObjectError(404, "Not Found", hdrs)
    held = max(t for t in (rec.data_ts, rec.meta_ts) if t is not None)
    if ts <= held:
        raise _conflict(held)
    return rec


def check_delete_at(headers: HeaderGetter, now: float) -> None:
    v = headers.get("x-delete-at")
    if v is None:
        return
    if not v.isdigit():
        raise ObjectError(400, f"X-Delete-At must be an integer: {v!r}")
    if int(v) <= now:
        raise ObjectError(400, "X-Delete-At in past")


def _is_user(k: str) -> bool:
    return k.startswith(_USER_PREFIXES) or k in POSTABLE


def put_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers a PUT persists (lower-case keys)."""
    out: dict[str, str] = {}
    for k, v in headers:
        lk = k.lower()
        if lk == "content-type" or _is_user(lk) or lk.startswith(_SYS_PREFIX):
            out[lk] = v
    out.setdefault("content-type", "application/octet-stream")
    return out


def post_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers a POST writes into its ``.meta`` file."""
    out: dict[str, str] = {}
    for k, v in headers:
        lk = k.lower()
        if _is_user(lk) or lk == "content-type":
            out[lk] = v
    return out


def apply_post(data_headers: Mapping[str, str], post: Mapping[str, str]) -> dict[str, str]:
    """Effective headers: the data's, minus its user metadata, plus the POST's."""
    out = {k: v for k, v in data_headers.items() if not _is_user(k)}
    out.update(post)
    if "content-type" in post:
        out["content-type"] = _keep_listing_params(post["content-type"], data_headers.get("content-type", ""))
    # Swift's DATAFILE_SYSTEM_META: a POST never changes what the PUT said
    # about X-Static-Large-Object (test_slo test_slo_post_the_manifest_metadata_update).
    out.pop("x-static-large-object", None)
    if "x-static-large-object" in data_headers:
        out["x-static-large-object"] = data_headers["x-static-large-object"]
    return out


CTYPE_TS = "x-object-sysmeta-ringstack-ctype-ts"  # in a .meta: when a POST set Content-Type


def meta_headers(post: Mapping[str, str], old: ObjectRecord, ts: Timestamp) -> dict[str, str]:
    """What a POST at ``ts`` writes into its ``.meta`` (which replaces the
    previous one): a POST that sets Content-Type records when; one that does
    not carries the type an earlier POST set (and its time), so the type
    lasts until a newer PUT or POST changes it (Swift's fast-post;
    test_slo test_slo_container_listing)."""
    out = dict(post)
    if "content-type" in out:
        out[CTYPE_TS] = ts.internal
    elif CTYPE_TS in old.headers and "content-type" in old.headers:
        out["content-type"] = old.headers["content-type"]
        out[CTYPE_TS] = old.headers[CTYPE_TS]
    return out


_LISTING_PARAMS = ("swift_bytes=", "slo_etag=")


def _keep_listing_params(new: str, old: str) -> str:
    """A POST's Content-Type keeps the listing parameters the PUT put on the
    data's (an SLO manifest's ``;swift_bytes=N;slo_etag=E``, which the proxy
    strips from clients' headers): they describe the data, not the type, and
    ride to the container listing on the content type (test_slo
    test_slo_container_listing)."""
    kept = [p.strip() for p in old.split(";")[1:] if p.strip().startswith(_LISTING_PARAMS)]
    if not kept or any(p.strip().startswith(_LISTING_PARAMS) for p in new.split(";")[1:]):
        return new
    return ";".join([new, *kept])


def with_post(rec: ObjectRecord, ts: Timestamp, post: Mapping[str, str], data_headers: Mapping[str, str]) -> ObjectRecord:
    return replace(rec, meta_ts=ts, headers=apply_post(data_headers, post))


def _title(k: str) -> str:
    return "-".join(p[:1].upper() + p[1:] for p in k.split("-"))


def response_headers(rec: ObjectRecord) -> list[tuple[str, str]]:
    """GET/HEAD headers for a live record (BACKEND_API.md, Objects)."""
    assert rec.data_ts is not None
    newest = max(t for t in (rec.data_ts, rec.meta_ts) if t is not None)
    out = [
        ("Content-Type", rec.headers.get("content-type", "application/octet-stream")),
        ("ETag", rec.etag),
        ("Last-Modified", http_date(last_modified(rec))),
        ("X-Timestamp", rec.data_ts.normal),
        ("X-Backend-Timestamp", newest.internal),
        ("X-Backend-Data-Timestamp", rec.data_ts.internal),
        ("Accept-Ranges", "bytes"),
    ]
    out.extend((_title(k), v) for k, v in sorted(rec.headers.items()) if k != "content-type")
    return out


def last_modified(rec: ObjectRecord) -> int:
    """Whole seconds, rounded up as Swift does (so If-Modified-Since with the
    Last-Modified value answers 304)."""
    ts = max(t for t in (rec.data_ts, rec.meta_ts) if t is not None)
    return -(-ts.ticks // 100_000)


@lru_cache(maxsize=4096)
def http_date(seconds: int) -> str:
    """RFC 7231 date (cached: formatdate costs ~0.1 ms, objects repeat)."""
    return formatdate(seconds, usegmt=True)


def check_if_delete_at(rec: ObjectRecord | None, headers: HeaderGetter) -> None:
    """``X-If-Delete-At`` (the expirer's DELETE): 412 unless the object is
    still scheduled for exactly that time, so a re-PUT object survives."""
    want = headers.get("x-if-delete-at")
    if want is None:
        return
    if rec is None or not rec.exists:
        raise ObjectError(404, "Not Found")
    if rec.headers.get("x-delete-at") != want.strip():
        raise ObjectError(412, f"X-If-Delete-At {want} does not match X-Delete-At")
